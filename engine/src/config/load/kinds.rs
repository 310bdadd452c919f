//! The kinds of venue and source, which the engine does not know: the hook through
//! which whoever builds gateways and sources reads and checks their tables while a
//! config loads. It gets the tables with the loader's positions, so that its
//! messages name the file, line and column like the engine's own, and a config that
//! loads with it is one that it can build.

use super::de::NodeDe;
use super::tree::{At, Node};
use serde::de::DeserializeOwned;
use std::path::Path;

/// What a program knows about the venues and sources it can build. The engine reads
/// a `[[venues]]` table's `name` and `kind` and a `[[sources]]` table's `kind` and
/// keeps the rest unread (`VenueConfig::settings`, `SourceConfig::settings`);
/// `load_with` also hands each table to these. Reading is part of reading every
/// item, so a problem there stops the load before the checks, as a missing key
/// does; the checks run among the engine's own, once every item has read well.
pub trait Kinds {
    /// The first problem of shape in one `[[venues]]` table: the whole table,
    /// `name` and `kind` included, so that a message about an unknown key can list
    /// every key the table may have.
    fn read_venue(&self, table: &Item<'_>) -> Result<(), Problem>;
    /// Every problem of a venue that its types cannot express (ranges, keys that go
    /// together).
    fn check_venue(&self, table: &Item<'_>) -> Vec<Problem>;
    /// As `read_venue`, for one `[[sources]]` table.
    fn read_source(&self, table: &Item<'_>) -> Result<(), Problem>;
    /// As `check_venue`, for one `[[sources]]` table.
    fn check_source(&self, table: &Item<'_>) -> Vec<Problem>;
    /// Problems between tables (two sessions sharing one file, an account map
    /// naming a follower the config does not have): every `[[venues]]` and
    /// `[[sources]]` table, in file order, each already read, and the config
    /// they are in.
    fn check_together(
        &self,
        cfg: &crate::config::Config,
        venues: &[Item<'_>],
        sources: &[Item<'_>],
    ) -> Vec<Problem> {
        let _ = (cfg, venues, sources);
        Vec::new()
    }
}

/// One `[[venues]]` or `[[sources]]` table as written: where each key and value is.
pub struct Item<'a> {
    node: &'a Node,
    dir: &'a Path,
}

/// Something wrong in a table, and where: the loader reports it as one of its own.
#[derive(Debug)]
pub struct Problem {
    pub(super) at: At,
    pub(super) message: String,
}

impl<'a> Item<'a> {
    pub(super) fn new(node: &'a Node, dir: &'a Path) -> Item<'a> {
        Item { node, dir }
    }

    /// The table as a `T`, or its first problem, worded and placed as the engine's
    /// own items are.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        T::deserialize(NodeDe(self.node)).map_err(|e| Problem {
            at: e.at.unwrap_or(self.node.at),
            message: e.render(),
        })
    }

    /// The table at `key` (`[venues.<key>]`), or this one when there is none: a
    /// problem about one of its keys then points at the nearest place written.
    pub fn table(&self, key: &str) -> Item<'a> {
        Item {
            node: self.node.get(key).unwrap_or(self.node),
            dir: self.dir,
        }
    }

    /// A problem about `key`, at its value (at the table when `key` is not written).
    pub fn problem(&self, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            at: self.node.field_at(key),
            message: message.into(),
        }
    }

    /// The folder of the config file, which a relative path is taken from.
    pub fn dir(&self) -> &'a Path {
        self.dir
    }
}
