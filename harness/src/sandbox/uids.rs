//! The host uids sandboxes run as when the server is root: a configured range
//! (`--sandbox-uid-range`, default `60000-60999`), from which every session's workspace gets
//! its own uid (and a gid of the same number). The allocation is persisted as the owner of the
//! workspace directory, so it survives restarts without a table of its own.

use std::fmt;
use std::str::FromStr;

use super::Error;

/// The uid the kernel reports for ids it cannot map (`nobody` on Debian); never handed out.
const OVERFLOW_UID: u32 = 65534;

/// An inclusive range of host uids, none of them root, a system account or `nobody`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UidRange {
    first: u32,
    last: u32,
}

impl Default for UidRange {
    fn default() -> Self {
        Self {
            first: 60000,
            last: 60999,
        }
    }
}

impl UidRange {
    /// `first..=last`. Rejects ranges that start below 1000 (system accounts), are empty,
    /// contain `nobody` (65534) or reach `u32::MAX` (the kernel's "no uid").
    pub fn new(first: u32, last: u32) -> Result<Self, Error> {
        let invalid = |why: &str| Error::UidRange(format!("{first}-{last}: {why}"));
        if first < 1000 {
            return Err(invalid(
                "must not include uids below 1000 (root and system accounts)",
            ));
        }
        if last < first {
            return Err(invalid("the last uid is below the first"));
        }
        if last == u32::MAX {
            return Err(invalid("4294967295 is not a valid uid"));
        }
        if (first..=last).contains(&OVERFLOW_UID) {
            return Err(invalid("must not include 65534 (nobody)"));
        }
        Ok(Self { first, last })
    }

    pub fn first(&self) -> u32 {
        self.first
    }

    pub fn last(&self) -> u32 {
        self.last
    }

    pub fn contains(&self, uid: u32) -> bool {
        (self.first..=self.last).contains(&uid)
    }

    /// The lowest uid of the range not in `used`; when every uid is taken, a uid derived from
    /// `key` (so the same session keeps getting the same one), and `false`.
    pub(crate) fn allocate(&self, used: &std::collections::HashSet<u32>, key: &str) -> (u32, bool) {
        if let Some(free) = (self.first..=self.last).find(|uid| !used.contains(uid)) {
            return (free, true);
        }
        // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let span = u64::from(self.last - self.first) + 1;
        // `hash % span` < span <= 2^32 - 1, so it fits.
        let offset = u32::try_from(hash % span).unwrap_or(0);
        (self.first + offset, false)
    }

    /// Accounts in `/etc/passwd` whose uid falls in the range (they would share files with
    /// sandboxes). Empty when the file cannot be read.
    pub fn host_accounts(&self) -> Vec<String> {
        let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
            return Vec::new();
        };
        passwd
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let uid: u32 = fields.nth(1)?.parse().ok()?;
                self.contains(uid).then(|| format!("{name} ({uid})"))
            })
            .collect()
    }
}

impl fmt::Display for UidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for UidRange {
    type Err = Error;

    /// `FIRST-LAST` or a single `UID`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let parse = |n: &str| {
            n.trim().parse::<u32>().map_err(|_| {
                Error::UidRange(format!("{s:?}: expected FIRST-LAST, e.g. 60000-60999"))
            })
        };
        match s.split_once('-') {
            Some((first, last)) => Self::new(parse(first)?, parse(last)?),
            None => {
                let uid = parse(s)?;
                Self::new(uid, uid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parses_and_rejects_dangerous_ranges() {
        assert_eq!(
            "60000-60999".parse::<UidRange>().unwrap(),
            UidRange::default()
        );
        assert_eq!("70000".parse::<UidRange>().unwrap().last(), 70000);
        for bad in [
            "0-100",
            "999-2000",
            "61000-60000",
            "60000-70000",
            "x",
            "1-",
            "",
        ] {
            assert!(bad.parse::<UidRange>().is_err(), "{bad}");
        }
        assert_eq!(UidRange::default().to_string(), "60000-60999");
    }

    #[test]
    fn allocates_the_lowest_free_uid_then_falls_back_to_a_stable_hash() {
        let range = UidRange::new(70000, 70002).unwrap();
        let mut used = HashSet::new();
        assert_eq!(range.allocate(&used, "a"), (70000, true));
        used.insert(70000);
        used.insert(70001);
        assert_eq!(range.allocate(&used, "a"), (70002, true));
        used.insert(70002);
        let (uid, fresh) = range.allocate(&used, "sesn_x");
        assert!(!fresh && range.contains(uid));
        assert_eq!(range.allocate(&used, "sesn_x").0, uid);
    }
}
