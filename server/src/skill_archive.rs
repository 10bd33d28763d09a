//! A skill version's files as one zip archive (`GET /v1/skills/{id}/versions/{v}/content`),
//! streamed: each entry's local header, then its blob's bytes as stored, then the central
//! directory. Entries are stored (no compression), named `<skill name>/<path>` in UTF-8, with
//! the CRC-32 and sizes recorded at upload, so the archive's length is known before the first
//! byte and nothing is buffered but one header. A version is at most 8 MiB and 500 files, far
//! below the zip32 limits, so no zip64 records are needed.

use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use managed_agents_core::skill::Version;

use crate::blobs::Blobs;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_DIRECTORY: u32 = 0x0605_4b50;
/// Version 2.0 (needed for directories and stored entries).
const VERSION_NEEDED: u16 = 20;
/// Made by Unix (3), spec 2.0: external attributes carry Unix modes.
const VERSION_MADE_BY: u16 = 3 << 8 | 20;
/// General-purpose flag bit 11: names are UTF-8.
const UTF8_NAMES: u16 = 1 << 11;
/// 1980-01-01 00:00 in MS-DOS date form (the earliest a zip can say).
const DOS_DATE: u16 = 1 << 5 | 1;
/// `-rw-r--r--` regular file, in the high half of the external attributes.
const FILE_MODE: u32 = 0o100_644 << 16;

/// Why an archive cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name or size does not fit a zip32 field (never with the upload limits).
    #[error("skill version too large for a zip archive")]
    TooLarge,
}

struct Entry {
    name: String,
    blob: String,
    size: u32,
    crc32: u32,
    offset: u32,
}

fn local_header(entry: &Entry) -> Bytes {
    let mut b = BytesMut::with_capacity(30 + entry.name.len());
    b.put_u32_le(LOCAL_HEADER);
    b.put_u16_le(VERSION_NEEDED);
    b.put_u16_le(UTF8_NAMES);
    b.put_u16_le(0); // stored
    b.put_u16_le(0); // time
    b.put_u16_le(DOS_DATE);
    b.put_u32_le(entry.crc32);
    b.put_u32_le(entry.size);
    b.put_u32_le(entry.size);
    b.put_u16_le(entry.name.len() as u16);
    b.put_u16_le(0); // extra
    b.put_slice(entry.name.as_bytes());
    b.freeze()
}

fn central_directory(entries: &[Entry], start: u32) -> Bytes {
    let mut b = BytesMut::new();
    for entry in entries {
        b.put_u32_le(CENTRAL_HEADER);
        b.put_u16_le(VERSION_MADE_BY);
        b.put_u16_le(VERSION_NEEDED);
        b.put_u16_le(UTF8_NAMES);
        b.put_u16_le(0);
        b.put_u16_le(0);
        b.put_u16_le(DOS_DATE);
        b.put_u32_le(entry.crc32);
        b.put_u32_le(entry.size);
        b.put_u32_le(entry.size);
        b.put_u16_le(entry.name.len() as u16);
        b.put_u16_le(0); // extra
        b.put_u16_le(0); // comment
        b.put_u16_le(0); // disk
        b.put_u16_le(0); // internal attributes
        b.put_u32_le(FILE_MODE);
        b.put_u32_le(entry.offset);
        b.put_slice(entry.name.as_bytes());
    }
    let size = b.len() as u32;
    b.put_u32_le(END_OF_DIRECTORY);
    b.put_u16_le(0);
    b.put_u16_le(0);
    b.put_u16_le(entries.len() as u16);
    b.put_u16_le(entries.len() as u16);
    b.put_u32_le(size);
    b.put_u32_le(start);
    b.put_u16_le(0);
    b.freeze()
}

/// The archive of `version` (files under `<name>/`): its length and its byte stream.
pub fn archive(
    blobs: Blobs,
    version: &Version,
) -> Result<(u64, BoxStream<'static, std::io::Result<Bytes>>), Error> {
    let mut entries = Vec::with_capacity(version.files.len());
    let mut offset: u64 = 0;
    for (index, file) in version.files.iter().enumerate() {
        let name = format!("{}/{}", version.name, file.path);
        let size = u32::try_from(file.size).map_err(|_| Error::TooLarge)?;
        if name.len() > usize::from(u16::MAX) {
            return Err(Error::TooLarge);
        }
        entries.push(Entry {
            offset: u32::try_from(offset).map_err(|_| Error::TooLarge)?,
            blob: version.blob(index),
            size,
            crc32: file.crc32,
            name,
        });
        offset += 30 + entries[index].name.len() as u64 + file.size;
    }
    if entries.len() > usize::from(u16::MAX) {
        return Err(Error::TooLarge);
    }
    let start = u32::try_from(offset).map_err(|_| Error::TooLarge)?;
    let directory = central_directory(&entries, start);
    let total = offset + directory.len() as u64;
    let parts: Vec<(Bytes, String)> = entries
        .iter()
        .map(|e| (local_header(e), e.blob.clone()))
        .collect();
    let files = stream::iter(parts).flat_map(move |(header, blob)| {
        let blobs = blobs.clone();
        let body = stream::once(async move {
            match blobs.open(&blob).await? {
                Some(found) => Ok(found.into_stream()),
                None => Err(std::io::Error::other(format!(
                    "skill file bytes {blob} are missing"
                ))),
            }
        })
        .try_flatten();
        stream::once(async move { Ok(header) }).chain(body).boxed()
    });
    let stream = files
        .chain(stream::once(async move { Ok(directory) }))
        .boxed();
    Ok((total, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use managed_agents_core::skill::SkillFile;
    use managed_agents_core::time::Timestamp;

    #[tokio::test]
    async fn stored_entries_with_the_recorded_sizes_and_checksums() {
        let blobs = Blobs::memory();
        let contents: [&[u8]; 2] = [b"---\nname: t\n---\n", b"print(1)\n"];
        let mut files = Vec::new();
        for (i, (path, bytes)) in ["SKILL.md", "bin/run.py"].iter().zip(contents).enumerate() {
            let mut w = blobs.create(&format!("p_{i}")).await.expect("create");
            w.write(bytes).await.expect("write");
            w.commit().await.expect("commit");
            files.push(SkillFile {
                path: (*path).to_owned(),
                size: bytes.len() as u64,
                crc32: crc32fast::hash(bytes),
            });
        }
        let version = Version {
            id: "1".into(),
            name: "t".into(),
            description: "d".into(),
            directory: "t".into(),
            created_at: Timestamp::from_millis(0),
            blob_prefix: "p".into(),
            files,
        };
        let (len, body) = archive(blobs, &version).expect("archive");
        let chunks: Vec<Bytes> = body.try_collect().await.expect("bytes");
        let zip: Vec<u8> = chunks.concat();
        assert_eq!(zip.len() as u64, len);
        assert_eq!(&zip[..4], &LOCAL_HEADER.to_le_bytes());
        let name_at = 30;
        assert_eq!(&zip[name_at..name_at + 10], b"t/SKILL.md");
        assert_eq!(
            &zip[name_at + 10..name_at + 10 + contents[0].len()],
            contents[0]
        );
        let end = &zip[zip.len() - 22..];
        assert_eq!(&end[..4], &END_OF_DIRECTORY.to_le_bytes());
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 2);
    }
}
