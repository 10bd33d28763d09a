//! The catalog: one entry per object, for listing objects of a kind with filters and cursors.
//!
//! Entries are ordered by id. Ids are time-ordered (see [`crate::ids`]), so id order is creation
//! order and an id is a stable, opaque cursor.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// What kind of object a catalog entry describes. The numeric codes are part of on-disk key
/// layouts and never change once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An agent.
    Agent,
    /// An environment.
    Environment,
    /// A session.
    Session,
    /// A vault.
    Vault,
    /// A credential inside a vault (`parent` is the vault id).
    Credential,
    /// An uploaded file.
    File,
    /// An API key (`parent` is the workspace it grants access to).
    ApiKey,
    /// A workspace.
    Workspace,
    /// A skill (its versions live in its own stream).
    Skill,
    /// A memory store (its memories and versions live in its own stream).
    MemoryStore,
    /// A self-hosted environment's work item (`parent` is the environment, `status` the lease
    /// state).
    Work,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 11] = [
        Kind::Agent,
        Kind::Environment,
        Kind::Session,
        Kind::Vault,
        Kind::Credential,
        Kind::File,
        Kind::ApiKey,
        Kind::Workspace,
        Kind::Skill,
        Kind::MemoryStore,
        Kind::Work,
    ];

    /// The stable one-byte code used in storage keys.
    pub const fn code(self) -> u8 {
        match self {
            Kind::Agent => 1,
            Kind::Environment => 2,
            Kind::Session => 3,
            Kind::Vault => 4,
            Kind::Credential => 5,
            Kind::File => 6,
            Kind::ApiKey => 7,
            Kind::Workspace => 8,
            Kind::Skill => 9,
            Kind::MemoryStore => 10,
            Kind::Work => 11,
        }
    }

    /// The kind with this code, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// The indexed facts about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// What the object is.
    pub kind: Kind,
    /// The object's id (also its stream key).
    pub id: String,
    /// The workspace (tenant) that owns it.
    pub workspace: String,
    /// The owning object, for nested objects (a credential's vault).
    pub parent: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Whether it is archived.
    pub archived: bool,
    /// A name that must be unique per workspace and kind, where the API requires one.
    pub name: Option<String>,
    /// For sessions: the agent id and version it runs.
    pub agent: Option<(String, u64)>,
    /// For sessions: the folded status (`idle`, `running`, …).
    pub status: Option<String>,
}

impl CatalogEntry {
    /// An entry with only the required facts set.
    pub fn new(
        kind: Kind,
        id: impl Into<String>,
        workspace: impl Into<String>,
        created_at: Timestamp,
    ) -> Self {
        Self {
            kind,
            id: id.into(),
            workspace: workspace.into(),
            parent: None,
            created_at,
            archived: false,
            name: None,
            agent: None,
            status: None,
        }
    }
}

/// Listing order by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// Bounds on creation time; every set bound must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    /// Strictly after.
    pub gt: Option<Timestamp>,
    /// At or after.
    pub gte: Option<Timestamp>,
    /// Strictly before.
    pub lt: Option<Timestamp>,
    /// At or before.
    pub lte: Option<Timestamp>,
}

impl TimeRange {
    /// Whether `t` lies within every set bound.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.gt.is_none_or(|b| t > b)
            && self.gte.is_none_or(|b| t >= b)
            && self.lt.is_none_or(|b| t < b)
            && self.lte.is_none_or(|b| t <= b)
    }
}

/// Which catalog entries to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogQuery {
    /// The kind listed.
    pub kind: Kind,
    /// Only this workspace's objects.
    pub workspace: String,
    /// Only children of this object.
    pub parent: Option<String>,
    /// Include archived objects.
    pub include_archived: bool,
    /// Only sessions of this agent.
    pub agent_id: Option<String>,
    /// Only sessions of this agent version (with `agent_id`).
    pub agent_version: Option<u64>,
    /// Only objects whose status is one of these (empty: any).
    pub statuses: Vec<String>,
    /// Only objects created in this range.
    pub created: TimeRange,
    /// Listing order.
    pub order: Order,
    /// Start strictly after this id in `order` (the cursor of the previous page).
    pub after: Option<String>,
    /// At most this many entries.
    pub limit: usize,
}

impl CatalogQuery {
    /// All non-archived objects of `kind` in `workspace`, newest first, 20 per page.
    pub fn new(kind: Kind, workspace: impl Into<String>) -> Self {
        Self {
            kind,
            workspace: workspace.into(),
            parent: None,
            include_archived: false,
            agent_id: None,
            agent_version: None,
            statuses: Vec::new(),
            created: TimeRange::default(),
            order: Order::Desc,
            after: None,
            limit: 20,
        }
    }

    /// Whether `entry` passes every filter (kind, workspace, parent, archived, agent, status,
    /// creation time). The cursor and limit are the backend's to apply.
    pub fn matches(&self, entry: &CatalogEntry) -> bool {
        entry.kind == self.kind
            && entry.workspace == self.workspace
            && (self.parent.is_none() || entry.parent == self.parent)
            && (self.include_archived || !entry.archived)
            && self
                .agent_id
                .as_ref()
                .is_none_or(|id| entry.agent.as_ref().is_some_and(|(a, _)| a == id))
            && self
                .agent_version
                .is_none_or(|v| entry.agent.as_ref().is_some_and(|(_, av)| *av == v))
            && (self.statuses.is_empty()
                || entry
                    .status
                    .as_ref()
                    .is_some_and(|s| self.statuses.contains(s)))
            && self.created.contains(entry.created_at)
    }

    /// Whether `id` lies beyond the cursor in this query's order.
    pub fn is_after_cursor(&self, id: &str) -> bool {
        match (&self.after, self.order) {
            (None, _) => true,
            (Some(cursor), Order::Desc) => id < cursor.as_str(),
            (Some(cursor), Order::Asc) => id > cursor.as_str(),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPage {
    /// The entries, in the query's order.
    pub entries: Vec<CatalogEntry>,
    /// Whether more entries match after the last one.
    pub has_more: bool,
}
