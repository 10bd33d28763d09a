//! Memory stores: given a store's records / when a command / then records or a refusal, and
//! the fold behind memories, versions, listings and redaction.

mod object_support;

use managed_agents_core::ids::{MemoryId, MemoryStoreId, MemoryVersionId, WorkspaceId};
use managed_agents_core::memory::{
    self, Actor, MemoryCreateParams, MemoryError, MemoryListItem, MemoryStore, MemoryUpdateParams,
    Operation, Record, VersionFilter, View,
};
use managed_agents_core::object::Object;
use managed_agents_core::time::Timestamp;
use object_support::at;
use serde_json::json;

struct Given {
    records: Vec<Record>,
    next: u32,
}

fn actor() -> Actor {
    Actor::Api {
        api_key_id: "apikey_01test".to_owned(),
    }
}

fn mem(n: u32) -> MemoryId {
    MemoryId::parse(&format!("mem_01m{n:03}")).expect("id")
}

fn ver(n: u32) -> MemoryVersionId {
    MemoryVersionId::parse(&format!("memver_01v{n:03}")).expect("id")
}

impl Given {
    fn store() -> Self {
        let records = memory::create_store(
            serde_json::from_value(json!({"name": "User Preferences", "metadata": {"k": "v"}}))
                .expect("body"),
            MemoryStoreId::parse("memstore_01test").expect("id"),
            WorkspaceId::parse("wrkspc_01test").expect("id"),
            at(0),
        )
        .expect("create");
        Self { records, next: 0 }
    }

    fn state(&self) -> MemoryStore {
        memory::fold(self.records.clone()).expect("store")
    }

    fn now(&self) -> Timestamp {
        at(i64::from(self.next))
    }

    /// Applies a command's records, or returns its refusal.
    fn when(
        &mut self,
        command: impl FnOnce(
            &MemoryStore,
            &MemoryVersionId,
            Timestamp,
        ) -> Result<Vec<Record>, MemoryError>,
    ) -> Result<Vec<Record>, MemoryError> {
        self.next += 1;
        let state = self.state();
        let records = command(&state, &ver(self.next), self.now())?;
        self.records.extend(records.clone());
        Ok(records)
    }

    fn create(&mut self, n: u32, path: &str, content: &str) -> Result<Vec<Record>, MemoryError> {
        let params = MemoryCreateParams {
            path: path.to_owned(),
            content: Some(content.to_owned()).into(),
        };
        self.when(|s, v, now| memory::create_memory(s, &params, &mem(n), v, &actor(), now))
    }

    fn update(&mut self, n: u32, body: serde_json::Value) -> Result<Vec<Record>, MemoryError> {
        let params: MemoryUpdateParams = serde_json::from_value(body).expect("body");
        self.when(|s, v, now| memory::update_memory(s, &mem(n), &params, v, &actor(), now))
    }

    fn delete(&mut self, n: u32, sha: Option<&str>) -> Result<Vec<Record>, MemoryError> {
        self.when(|s, v, now| memory::delete_memory(s, &mem(n), sha, v, &actor(), now))
    }

    fn archive(&mut self) {
        let records = memory::archive_store(&self.state(), at(100));
        self.records.extend(records);
    }
}

fn paths(items: &[MemoryListItem]) -> Vec<String> {
    items
        .iter()
        .map(|item| match item {
            MemoryListItem::Memory(m) => m.path.clone(),
            MemoryListItem::Prefix(p) => p.path.clone(),
        })
        .collect()
}

#[test]
fn a_created_memory_is_folded_with_its_first_version() {
    let mut given = Given::store();
    given.create(1, "/notes/todo.md", "hello").expect("create");
    let store = given.state();
    let memory = store.memory(&mem(1)).expect("live");
    let full = store.render_memory(memory, View::Full);
    assert_eq!(full.path, "/notes/todo.md");
    assert_eq!(full.content.as_deref(), Some("hello"));
    assert_eq!(full.content_sha256, memory::sha256("hello"));
    assert_eq!(
        full.content_sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(full.content_size_bytes, 5);
    assert_eq!(full.memory_version_id, ver(1));
    assert_eq!(store.render_memory(memory, View::Basic).content, None);
    // Memory changes do not touch the store's own updated_at.
    assert_eq!(store.updated_at, at(0));
    assert_eq!(store.catalog_entry().id, "memstore_01test");
}

#[test]
fn a_taken_path_is_a_conflict_naming_the_holder() {
    let mut given = Given::store();
    given.create(1, "/a.md", "x").expect("create");
    let refused = given.create(2, "/a.md", "y").expect_err("taken");
    assert_eq!(
        refused,
        MemoryError::PathConflict {
            path: "/a.md".to_owned(),
            conflicting_memory_id: mem(1),
        }
    );
    // Case-sensitive: another case is another path.
    given.create(3, "/A.md", "y").expect("other case");
    // A deleted memory frees its path.
    given.delete(1, None).expect("delete");
    given.create(4, "/a.md", "z").expect("free again");
}

#[test]
fn invalid_paths_and_content_are_refused_before_anything_else() {
    let mut given = Given::store();
    for path in ["a", "/", "/a/../b", "/a//b", "/x\u{200b}"] {
        let refused = given.create(1, path, "x").expect_err(path);
        assert!(matches!(refused, MemoryError::Object(_)), "{path}");
    }
    let big = "x".repeat(memory::MAX_CONTENT_BYTES + 1);
    assert!(given.create(1, "/big", &big).is_err());
    given
        .create(1, "/exact", &"x".repeat(memory::MAX_CONTENT_BYTES))
        .expect("the limit itself is fine");
    given
        .create(2, "/empty", "")
        .expect("empty content is fine");
}

#[test]
fn updates_rename_keep_the_id_and_check_the_precondition() {
    let mut given = Given::store();
    given.create(1, "/a.md", "one").expect("create");
    given.create(2, "/b.md", "two").expect("create");
    // Renaming onto a taken path conflicts.
    let refused = given
        .update(1, json!({"path": "/b.md"}))
        .expect_err("taken");
    assert!(matches!(refused, MemoryError::PathConflict { .. }));
    // A stale hash fails the precondition and writes nothing.
    let stale = memory::sha256("not it");
    let refused = given
        .update(
            1,
            json!({"content": "new", "precondition": {"type": "content_sha256", "content_sha256": stale}}),
        )
        .expect_err("stale");
    assert!(matches!(refused, MemoryError::PreconditionFailed { .. }));
    // The right hash passes; rename and new content in one version.
    let records = given
        .update(
            1,
            json!({"content": "uno", "path": "/dir/a.md", "precondition": {"type": "content_sha256", "content_sha256": memory::sha256("one")}}),
        )
        .expect("update");
    assert_eq!(records.len(), 1);
    let store = given.state();
    assert!(store.at_path("/a.md").is_none());
    let memory = store.at_path("/dir/a.md").expect("renamed");
    assert_eq!(memory.id, mem(1));
    assert_eq!(memory.created_at, at(1));
    assert_eq!(
        store.render_memory(memory, View::Full).content.as_deref(),
        Some("uno")
    );
    // Nothing changes: no version.
    assert!(given
        .update(1, json!({"content": "uno", "path": "/dir/a.md"}))
        .expect("no-op")
        .is_empty());
    assert!(given.update(1, json!({})).expect("no-op").is_empty());
    // A malformed precondition is a 400.
    let refused = given
        .update(1, json!({"precondition": {"type": "etag"}}))
        .expect_err("type");
    assert!(matches!(refused, MemoryError::Object(_)));
    // Unknown memory.
    assert!(matches!(
        given.update(9, json!({"content": "x"})),
        Err(MemoryError::NotFound { .. })
    ));
}

#[test]
fn deletes_check_the_expected_hash_and_leave_a_version() {
    let mut given = Given::store();
    given.create(1, "/a.md", "one").expect("create");
    let refused = given
        .delete(1, Some(&memory::sha256("two")))
        .expect_err("stale");
    assert!(matches!(refused, MemoryError::PreconditionFailed { .. }));
    given
        .delete(1, Some(&memory::sha256("one")))
        .expect("delete");
    let store = given.state();
    assert!(store.memory(&mem(1)).is_none());
    assert!(matches!(
        given.delete(1, None),
        Err(MemoryError::NotFound { .. })
    ));
    let (versions, more) = store.list_versions(&VersionFilter::default(), None, 10, View::Full);
    assert!(more.is_none());
    let ops: Vec<Operation> = versions.iter().map(|v| v.operation).collect();
    assert_eq!(ops, [Operation::Deleted, Operation::Created]);
    let deleted = &versions[0];
    assert_eq!(deleted.path.as_deref(), Some("/a.md"));
    assert_eq!(deleted.content, None);
    assert_eq!(deleted.content_sha256, None);
    assert_eq!(deleted.content_size_bytes, None);
    assert_eq!(deleted.created_by, Some(actor()));
}

#[test]
fn an_archived_store_refuses_writes_but_not_deletes_or_redactions() {
    let mut given = Given::store();
    given.create(1, "/a.md", "one").expect("create");
    given.update(1, json!({"content": "two"})).expect("update");
    given.archive();
    let store = given.state();
    assert!(store.is_archived());
    let code = |e: MemoryError| match e {
        MemoryError::Object(o) => o.error_code(),
        _ => None,
    };
    assert_eq!(
        code(given.create(2, "/b.md", "x").expect_err("archived")),
        Some("memory_store_archived")
    );
    assert_eq!(
        code(
            given
                .update(1, json!({"content": "x"}))
                .expect_err("archived")
        ),
        Some("memory_store_archived")
    );
    let params = serde_json::from_value(json!({"name": "x"})).expect("body");
    assert!(memory::update_store(&store, params, at(101)).is_err());
    assert!(memory::archive_store(&store, at(101)).is_empty());
    given
        .when(|s, _, now| memory::redact(s, &ver(1), &actor(), now))
        .expect("redaction works");
    given.delete(1, None).expect("delete works");
}

#[test]
fn redaction_scrubs_content_and_path_but_keeps_the_actor() {
    let mut given = Given::store();
    given.create(1, "/secret.md", "password").expect("create");
    given
        .update(1, json!({"content": "nothing"}))
        .expect("update");
    // The current version of a live memory stays.
    let refused = given
        .when(|s, _, now| memory::redact(s, &ver(2), &actor(), now))
        .expect_err("current");
    assert!(matches!(refused, MemoryError::Object(_)));
    given
        .when(|s, _, now| memory::redact(s, &ver(1), &actor(), now))
        .expect("redact");
    // Again: nothing more.
    assert!(given
        .when(|s, _, now| memory::redact(s, &ver(1), &actor(), now))
        .expect("again")
        .is_empty());
    let store = given.state();
    let version = store.render_version(store.version(&ver(1)).expect("kept"), View::Full);
    assert_eq!(version.content, None);
    assert_eq!(version.path, None);
    assert_eq!(version.content_sha256, None);
    assert_eq!(version.content_size_bytes, None);
    assert_eq!(version.created_by, Some(actor()));
    assert_eq!(version.created_at, at(1));
    assert_eq!(version.redacted_at, Some(at(4)));
    assert_eq!(version.redacted_by, Some(actor()));
    assert!(matches!(
        given.when(|s, _, now| memory::redact(s, &ver(99), &actor(), now)),
        Err(MemoryError::NotFound { .. })
    ));
}

#[test]
fn listings_roll_up_below_the_depth_and_page_without_repeats() {
    let mut given = Given::store();
    for (n, path) in [
        "/notes/todo.md",
        "/notes/a/one.md",
        "/notes/a/two.md",
        "/notes/a/deep/three.md",
        "/notes/b/x.md",
        "/notes-archive/old.md",
        "/top.md",
    ]
    .iter()
    .enumerate()
    {
        given.create(n as u32, path, "x").expect("create");
    }
    let store = given.state();
    let (all, more) = store.list_memories("/", 0, None, 100, View::Basic);
    assert!(more.is_none());
    assert_eq!(all.len(), 7);
    let (items, _) = store.list_memories("/notes/", 0, None, 100, View::Basic);
    assert_eq!(
        paths(&items),
        [
            "/notes/a/deep/three.md",
            "/notes/a/one.md",
            "/notes/a/two.md",
            "/notes/b/x.md",
            "/notes/todo.md"
        ]
    );
    let (items, _) = store.list_memories("/notes/", 1, None, 100, View::Basic);
    assert_eq!(paths(&items), ["/notes/a/", "/notes/b/", "/notes/todo.md"]);
    assert!(matches!(items[0], MemoryListItem::Prefix(_)));
    let (items, _) = store.list_memories("/", 1, None, 100, View::Basic);
    assert_eq!(paths(&items), ["/notes-archive/", "/notes/", "/top.md"]);
    // Pages of one at depth 1 walk the same items, each once.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, next) = store.list_memories("/notes/", 1, after.as_deref(), 1, View::Basic);
        walked.extend(paths(&page));
        match next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    assert_eq!(walked, ["/notes/a/", "/notes/b/", "/notes/todo.md"]);
}

#[test]
fn version_filters_and_pages_are_newest_first() {
    let mut given = Given::store();
    given.create(1, "/a", "1").expect("create");
    given.create(2, "/b", "1").expect("create");
    given.update(1, json!({"content": "2"})).expect("update");
    given.delete(2, None).expect("delete");
    let store = given.state();
    let filter = VersionFilter {
        memory_id: Some(mem(1).to_string()),
        ..VersionFilter::default()
    };
    let (page, _) = store.list_versions(&filter, None, 10, View::Basic);
    let ids: Vec<_> = page.iter().map(|v| v.id.clone()).collect();
    assert_eq!(ids, [ver(3), ver(1)]);
    assert!(page
        .iter()
        .all(|v| v.content.is_none() && v.content_sha256.is_some()));
    let filter = VersionFilter {
        operation: Some(Operation::Deleted),
        ..VersionFilter::default()
    };
    assert_eq!(
        store.list_versions(&filter, None, 10, View::Basic).0.len(),
        1
    );
    let filter = VersionFilter {
        api_key_id: Some("apikey_other".to_owned()),
        ..VersionFilter::default()
    };
    assert!(store
        .list_versions(&filter, None, 10, View::Basic)
        .0
        .is_empty());
    let (first, next) = store.list_versions(&VersionFilter::default(), None, 3, View::Basic);
    assert_eq!(first.len(), 3);
    let (rest, none) = store.list_versions(&VersionFilter::default(), next, 3, View::Basic);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, ver(1));
    assert!(none.is_none());
}

#[test]
fn store_settings_validate_and_patch() {
    let given = Given::store();
    let store = given.state();
    assert_eq!(store.render().description, "");
    let params =
        serde_json::from_value(json!({"description": "about", "metadata": {"k": null, "n": "1"}}))
            .expect("body");
    let records = memory::update_store(&store, params, at(5)).expect("update");
    let store = memory::fold(given.records.iter().cloned().chain(records)).expect("store");
    assert_eq!(store.render().description, "about");
    assert_eq!(store.render().metadata.len(), 1);
    assert_eq!(store.updated_at, at(5));
    let params = serde_json::from_value(json!({"description": ""})).expect("body");
    let cleared = memory::update_store(&store, params, at(6)).expect("clear");
    assert_eq!(cleared.len(), 1);
    for body in [
        json!({"name": ""}),
        json!({"name": "a\nb"}),
        json!({"name": "x".repeat(256)}),
        json!({"description": "x".repeat(1025)}),
    ] {
        let params = serde_json::from_value(body.clone()).expect("body");
        assert!(
            memory::update_store(&store, params, at(7)).is_err(),
            "{body}"
        );
    }
}

#[test]
fn a_session_mounts_each_store_once_at_a_path_of_its_own() {
    use managed_agents_core::ids::ResourceId;
    use managed_agents_core::resource::{self, MemoryStoreInfo, Resource};
    let attach = |id: &str, name: &str| -> Resource {
        let params = serde_json::from_value(json!({"type": "memory_store", "memory_store_id": id}))
            .expect("body");
        let info = MemoryStoreInfo {
            name: name.to_owned(),
            description: String::new(),
        };
        resource::resolve(
            params,
            ResourceId::parse("sesrsc_01x").expect("id"),
            at(0),
            Some(&info),
            |_| unreachable!("no token"),
        )
        .expect("resolved")
    };
    let a = attach("memstore_01a", "Notes");
    let b = attach("memstore_01b", "Other");
    assert!(resource::check_memory_stores(&[a.clone(), b.clone()]).is_ok());
    let twice = resource::check_memory_stores(&[a.clone(), b, a.clone()]).expect_err("twice");
    assert_eq!(twice.field, "resources[2].memory_store_id");
    let same_slug = attach("memstore_01c", "notes!");
    let clash = resource::check_memory_stores(&[a, same_slug]).expect_err("same mount path");
    assert!(
        clash.message.contains("/mnt/memory/notes"),
        "{}",
        clash.message
    );
}
