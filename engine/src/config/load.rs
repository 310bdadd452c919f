//! Loading and validation: a TOML file, plus the followers and subscriptions CSV
//! files it names, into a `Config`.
//!
//! Owns every message a person reads about a config file. Each error names the
//! file, the 1-based line (and column where known) and what was expected, and a
//! load reports every error it finds, not the first. It never builds engine tables
//! (`model::Universe` does) and reads no file but the ones the config names.
//!
//! How: the TOML is parsed once, by toml_edit (the parser inside `toml`, with the
//! spans public), into a tree that keeps the position of every key and value
//! (`tree`). `Config` is deserialized from that tree by a serde deserializer that
//! tags each error with the position of the node that failed (`de`); when that
//! fails, every top-level item is deserialized on its own so that each bad item
//! gets its own error. A CSV row becomes a tree of the same shape (each cell at the
//! row's line), so rows go through the same deserializer. Once everything parses,
//! `check` looks at what a type cannot express (ranges, ids, references between
//! items) and `Universe::from_config` has the last word. Cross-item checks wait
//! until every item parses, so that an item that failed to parse does not also
//! show up as an "unknown follower". A venue's or source's own keys are read and
//! checked in the same two steps by the `Kinds` the caller gives (`kinds`).

mod kinds;

pub use kinds::{Item, Kinds, Problem};

use super::{
    Config, FollowerConfig, LeaderConfig, ModeConfig, SourceConfig, SubscriptionConfig,
    SymbolConfig, VenueConfig,
};
use crate::model::{ModelError, Universe};
use crate::units::{Lots, Money};
use de::{DeError, EntriesDe, NodeDe};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use tree::{At, Key, Kind, LineIndex, Node};

/// One problem in a config file. `line` and `column` are 1-based; 0 means unknown
/// (the error is about the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found in one load, ordered by file, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigError {
    /// `file:line:column: message`, leaving out a line or column that is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Largest TOML file accepted.
const CONFIG_BYTES_MAX: usize = 16 << 20;
/// Largest followers or subscriptions CSV file accepted (about 4 million rows).
const CSV_BYTES_MAX: usize = 512 << 20;
/// Errors reported at most; one last error counts the rest.
const ERRORS_MAX: usize = 100;
/// Longest message, in characters: messages quote input, which may be huge.
const MESSAGE_CHARS_MAX: usize = 300;
/// Names listed at most in an "expected one of" hint.
const HINT_NAMES_MAX: usize = 12;
/// Spreadsheet programs start CSV files with it.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// A CSV line starting with it is a comment.
const CSV_COMMENT: u8 = b'#';

/// Read, parse and validate the config at `path` and the CSV files it names
/// (relative paths are relative to `path`'s directory), and have `kinds` read and
/// check every venue and source: a config that is to run is loaded by this, with
/// the kinds that will build its gateways and sources.
pub fn load_with(path: &Path, kinds: &dyn Kinds) -> Result<Config, ConfigErrors> {
    load_file(path, Some(kinds))
}

/// As `load_with`, for TOML text already in memory; `path` names it in errors and
/// is the base of relative paths.
pub fn load_str_with(text: &str, path: &Path, kinds: &dyn Kinds) -> Result<Config, ConfigErrors> {
    Loader::new(path, Some(kinds)).run(text)
}

/// As `load_with`, reading no venue's or source's own keys: for what needs the
/// decision model and not the gateways and sources.
/// The field names of a config struct `T` (what it passes to serde), for a
/// check that every key is documented, and for CSV headers.
pub use tree::struct_fields;

pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_file(path, None)
}

/// As `load_str_with`, reading no venue's or source's own keys.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    Loader::new(path, None).run(text)
}

fn load_file(path: &Path, kinds: Option<&dyn Kinds>) -> Result<Config, ConfigErrors> {
    let mut loader = Loader::new(path, kinds);
    let text = match read_text(path, CONFIG_BYTES_MAX) {
        Ok(text) => text,
        Err((at, message)) => {
            loader.error(at, message);
            return Err(loader.into_errors());
        }
    };
    loader.run(&text)
}

/// A decision model as the journal keeps it (`Config::model_toml`): validated as
/// any config, with no size ceiling (the journal bounds it; a config file is capped
/// at 16 MiB, a deployment's model grows with its followers). Its venues' kind and
/// settings are placeholders, which no `Kinds` reads.
pub fn load_model(text: &str) -> Result<Config, ConfigErrors> {
    let mut loader = Loader::new(Path::new("journaled config"), None);
    loader.text_max = usize::MAX;
    loader.model = true;
    loader.run(text)
}

/// The TOML file is always file 0; CSV files follow in the order they are read.
const TOML_FILE: usize = 0;

struct Loader<'k> {
    files: Vec<PathBuf>,
    base: PathBuf,
    text_max: usize,
    /// Reading a journaled model: `removed` items are the engine's own marks.
    model: bool,
    /// Who reads the venues' and sources' own keys; `None`: nobody, they are kept.
    kinds: Option<&'k dyn Kinds>,
    errors: Vec<(At, String)>,
    dropped: usize,
}

/// The CSV rows of one table, with the tree of each row for error positions.
struct CsvRows<T> {
    values: Vec<T>,
    nodes: Vec<Node>,
}

impl<T> Default for CsvRows<T> {
    fn default() -> Self {
        CsvRows {
            values: Vec::new(),
            nodes: Vec::new(),
        }
    }
}

impl<'k> Loader<'k> {
    fn new(path: &Path, kinds: Option<&'k dyn Kinds>) -> Loader<'k> {
        Loader {
            files: vec![path.to_path_buf()],
            base: absolute_parent(path),
            text_max: CONFIG_BYTES_MAX,
            model: false,
            kinds,
            errors: Vec::new(),
            dropped: 0,
        }
    }

    fn error(&mut self, at: At, message: impl Into<String>) {
        if self.errors.len() >= ERRORS_MAX {
            self.dropped += 1;
            return;
        }
        self.errors.push((at, clip(&message.into())));
    }

    fn de_error(&mut self, e: DeError, fallback: At) {
        let at = e.at.unwrap_or(fallback);
        self.error(at, e.render());
    }

    fn problem(&mut self, p: Problem) {
        self.error(p.at, p.message);
    }

    /// The kinds' checks of `item`, a venue or a source (`check` says which).
    fn kinds_check(&mut self, item: &Node, check: fn(&dyn Kinds, &Item<'_>) -> Vec<Problem>) {
        let Some(kinds) = self.kinds else { return };
        for p in check(kinds, &Item::new(item, &self.base)) {
            self.problem(p);
        }
    }

    fn into_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|(at, _)| *at);
        let mut out: Vec<ConfigError> = self
            .errors
            .into_iter()
            .map(|(at, message)| ConfigError {
                file: self.files.get(at.file).cloned().unwrap_or_default(),
                line: at.line,
                column: at.column,
                message,
            })
            .collect();
        if self.dropped > 0 {
            out.push(ConfigError {
                file: self.files[TOML_FILE].clone(),
                line: 0,
                column: 0,
                message: format!("{} more errors not shown", self.dropped),
            });
        }
        ConfigErrors(out)
    }

    /// Where `at` is, for a message about another place ("line 7", or
    /// "followers.csv:7" when it is in another file).
    fn place(&self, at: At, from: At) -> String {
        if at.file == from.file {
            format!("line {}", at.line)
        } else {
            let file = self.files.get(at.file).cloned().unwrap_or_default();
            format!("{}:{}", file.display(), at.line)
        }
    }

    fn run(mut self, text: &str) -> Result<Config, ConfigErrors> {
        match self.parse(text) {
            Some(cfg) if self.errors.is_empty() => Ok(cfg),
            _ => Err(self.into_errors()),
        }
    }

    fn parse(&mut self, text: &str) -> Option<Config> {
        let file_at = At::file(TOML_FILE);
        if text.len() > self.text_max {
            self.error(
                file_at,
                format!(
                    "the file is {} bytes; a config file may have at most {}",
                    text.len(),
                    self.text_max
                ),
            );
            return None;
        }
        let (root, inexact) = match tree::parse(text, TOML_FILE) {
            Ok(parsed) => parsed,
            Err(e) => {
                let at = e
                    .span()
                    .map(|s| LineIndex::new(text).at(TOML_FILE, s.start))
                    .unwrap_or(file_at);
                let detail = e.message().trim().replace('\n', "; ");
                let at_end = e.span().is_some_and(|s| s.start >= text.trim_end().len());
                let message = match (detail.is_empty(), at_end) {
                    (false, _) => format!("invalid TOML: {detail}"),
                    (true, true) => "invalid TOML: the file ends in the middle of an item".into(),
                    (true, false) => "invalid TOML".into(),
                };
                self.error(at, message);
                return None;
            }
        };
        for (at, message) in inexact {
            self.error(at, message);
        }

        let parsed = self.deserialize_config(&root);
        let csv_path = |parsed: &Option<Config>, key: &str| match parsed {
            Some(cfg) if key == "followers_file" => cfg.followers_file.clone(),
            Some(cfg) => cfg.subscriptions_file.clone(),
            None => root
                .get(key)
                .and_then(|n| PathBuf::deserialize(NodeDe(n)).ok()),
        };
        let followers_file = csv_path(&parsed, "followers_file").map(|p| resolve(&self.base, &p));
        let subscriptions_file =
            csv_path(&parsed, "subscriptions_file").map(|p| resolve(&self.base, &p));
        let followers: CsvRows<FollowerConfig> = match &followers_file {
            Some(p) => self.load_csv(p, root.field_at("followers_file")),
            None => CsvRows::default(),
        };
        let subscriptions: CsvRows<SubscriptionConfig> = match &subscriptions_file {
            Some(p) => self.load_csv(p, root.field_at("subscriptions_file")),
            None => CsvRows::default(),
        };

        let mut cfg = parsed?;
        if !self.errors.is_empty() {
            return None;
        }
        cfg.followers_file = followers_file;
        cfg.subscriptions_file = subscriptions_file;
        cfg.followers.extend(followers.values);
        cfg.subscriptions.extend(subscriptions.values);
        for source in &mut cfg.sources {
            source.dir.clone_from(&self.base);
        }
        // A journaled model's venues have no folder: it is path-independent.
        if !self.model {
            for venue in &mut cfg.venues {
                venue.dir.clone_from(&self.base);
            }
        }
        if let Some(j) = cfg.journal.as_mut() {
            j.dir = resolve(&self.base, &j.dir);
        }
        if let Some(socket) = cfg.control.as_mut().and_then(|c| c.socket.as_mut()) {
            *socket = resolve(&self.base, socket);
        }

        let sites = Sites {
            root: &root,
            followers_csv: &followers.nodes,
            subscriptions_csv: &subscriptions.nodes,
        };
        check(&cfg, &sites, self);
        if self.errors.is_empty() {
            if let Err(e) = Universe::from_config(&cfg) {
                let at = model_error_site(&e, &cfg, &sites);
                self.error(at, e.to_string());
            }
        }
        Some(cfg)
    }

    /// `Config` from the tree, its venues and sources read by the kinds too; on
    /// failure, one error per failing top-level item.
    fn deserialize_config(&mut self, root: &Node) -> Option<Config> {
        let first = match Config::deserialize(NodeDe(root)) {
            Ok(cfg) => {
                let mut read = true;
                if let Kind::Table(entries) = &root.kind {
                    for (key, value) in entries {
                        if let Kind::Array(items) = &value.kind {
                            for item in items {
                                read &= self.kinds_read(&key.name, item);
                            }
                        }
                    }
                }
                return read.then_some(cfg);
            }
            Err(e) => e,
        };
        let before = self.errors.len() + self.dropped;
        let Kind::Table(entries) = &root.kind else {
            self.de_error(first, root.at);
            return None;
        };
        for entry in entries {
            let (key, value) = entry;
            let items = match &value.kind {
                Kind::Array(items) => Some(items),
                _ => None,
            };
            let section = key.name.as_str();
            match (section, items) {
                ("symbols", Some(items)) => self.item_errors::<SymbolConfig>(section, items),
                ("venues", Some(items)) => self.item_errors::<VenueConfig>(section, items),
                ("sources", Some(items)) => self.item_errors::<SourceConfig>(section, items),
                ("leaders", Some(items)) => self.item_errors::<LeaderConfig>(section, items),
                ("followers", Some(items)) => self.item_errors::<FollowerConfig>(section, items),
                ("subscriptions", Some(items)) => {
                    self.item_errors::<SubscriptionConfig>(section, items)
                }
                // Anything else (engine, the file keys, unknown keys, keys added
                // later) is checked by `Config` itself, one key at a time.
                _ => {
                    let one = std::slice::from_ref(entry);
                    if let Err(e) = Config::deserialize(EntriesDe(one, root.at)) {
                        self.de_error(e, key.at);
                    }
                }
            }
        }
        if self.errors.len() + self.dropped == before {
            self.de_error(first, root.at);
        }
        None
    }

    /// The error of each item of `section` that does not read as a `T`: the
    /// kinds' reading first, whose messages know every key of a venue or source.
    fn item_errors<T: DeserializeOwned>(&mut self, section: &str, items: &[Node]) {
        for item in items {
            if !self.kinds_read(section, item) {
                continue;
            }
            if let Err(e) = T::deserialize(NodeDe(item)) {
                self.de_error(e, item.at);
            }
        }
    }

    /// Whether the kinds read `item` of `section` without a problem (reporting it
    /// when not); true for a section they do not read, or without kinds.
    fn kinds_read(&mut self, section: &str, item: &Node) -> bool {
        let Some(kinds) = self.kinds else {
            return true;
        };
        let table = Item::new(item, &self.base);
        let read = match section {
            "venues" => kinds.read_venue(&table),
            "sources" => kinds.read_source(&table),
            _ => Ok(()),
        };
        match read {
            Ok(()) => true,
            Err(p) => {
                self.problem(p);
                false
            }
        }
    }

    /// Rows of a CSV file whose header names fields of `T`. `named_at` is where the
    /// TOML names the file (for errors about the file as a whole).
    fn load_csv<T: DeserializeOwned>(&mut self, path: &Path, named_at: At) -> CsvRows<T> {
        let mut rows = CsvRows::default();
        let bytes = match read_bytes(path, CSV_BYTES_MAX) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.error(named_at, format!("cannot read `{}`: {e}", path.display()));
                return rows;
            }
        };
        let file = self.files.len();
        self.files.push(path.to_path_buf());
        let data = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
        let line_at = |pos: Option<&csv::Position>| At {
            file,
            line: pos.map_or(0, |pos| csv_line(data, pos)),
            column: 0,
        };

        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(CSV_COMMENT))
            .flexible(false)
            .from_reader(data);
        let headers = match reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                self.error(line_at(e.position()), csv_message(&e));
                return rows;
            }
        };
        let fields = tree::struct_fields::<T>();
        if headers.is_empty() {
            self.error(
                At::file(file),
                format!(
                    "no header row: the first line names the columns, from: {}",
                    fields.join(", ")
                ),
            );
            return rows;
        }
        let header_at = line_at(headers.position());
        let mut header_ok = true;
        for (i, name) in headers.iter().enumerate() {
            if headers.iter().take(i).any(|h| h == name) {
                self.error(header_at, format!("duplicate column `{name}`"));
                header_ok = false;
            } else if !fields.is_empty() && !fields.contains(&name) {
                self.error(
                    header_at,
                    format!(
                        "unknown column `{name}`; expected one of: {}",
                        fields.join(", ")
                    ),
                );
                header_ok = false;
            }
        }
        if !header_ok {
            return rows;
        }

        let mut missing_reported: Vec<&'static str> = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    self.error(line_at(e.position()), csv_message(&e));
                    if e.is_io_error() {
                        break;
                    }
                    continue;
                }
            }
            let at = line_at(record.position());
            let entries = headers
                .iter()
                .zip(record.iter())
                .filter(|(_, cell)| !cell.is_empty())
                .map(|(name, cell)| {
                    let key = Key {
                        name: name.to_string(),
                        at,
                    };
                    (key, Node::at(at, Kind::Cell(cell.to_string())))
                })
                .collect();
            let node = Node::at(at, Kind::Table(entries));
            match T::deserialize(NodeDe(&node)) {
                Ok(value) => {
                    rows.values.push(value);
                    rows.nodes.push(node);
                }
                Err(e) => match e.missing_field {
                    Some(field) if !headers.iter().any(|h| h == field) => {
                        if !missing_reported.contains(&field) {
                            missing_reported.push(field);
                            self.error(header_at, format!("missing column `{field}`"));
                        }
                    }
                    Some(field) => self.error(at, format!("`{field}` is empty; it is required")),
                    None => self.de_error(e, at),
                },
            }
        }
        rows
    }
}

/// The tree node of each config item, in the order of the `Config` vectors: the
/// TOML array entries, then the CSV rows.
struct Sites<'a> {
    root: &'a Node,
    followers_csv: &'a [Node],
    subscriptions_csv: &'a [Node],
}

impl<'a> Sites<'a> {
    fn items(&self, section: &str) -> Vec<&'a Node> {
        let mut items: Vec<&Node> = match self.root.get(section).map(|n| &n.kind) {
            Some(Kind::Array(items)) => items.iter().collect(),
            _ => Vec::new(),
        };
        match section {
            "followers" => items.extend(self.followers_csv),
            "subscriptions" => items.extend(self.subscriptions_csv),
            _ => {}
        }
        items
    }

    /// The node of item `i` of `section`, or the root when it cannot be found.
    fn item(&self, items: &[&'a Node], i: usize) -> &'a Node {
        items.get(i).copied().unwrap_or(self.root)
    }
}

/// The most bytes one ring may take.
const RING_BYTES_MAX: usize = 4 << 30;

/// The most working orders or remembered event ids (each table is allocated
/// whole at start; 2^26 entries is a few GiB at most).
const COUNT_MAX: usize = 1 << 26;

/// "0-3, 6" for a set of CPU ids.
fn cpu_list(ids: &[core_affinity::CoreId]) -> String {
    let mut ids: Vec<usize> = ids.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "none that it can tell".into()
    } else {
        parts.join(", ")
    }
}

/// What the types cannot express: ranges, units, mode keys, unique ids and
/// references between items. Reports every problem, each at its key's place.
fn check(cfg: &Config, sites: &Sites<'_>, out: &mut Loader) {
    let root = sites.root;
    let engine = root.get("engine").unwrap_or(root);
    let e = &cfg.engine;
    // A ring is allocated whole at start: bound its bytes, so that what
    // `check-config` accepts, `run` can allocate.
    for (field, slots, slot_bytes) in [
        (
            "feed_ring_slots",
            e.feed_ring_slots,
            std::mem::size_of::<crate::event::FeedEvent>(),
        ),
        (
            "exec_ring_slots",
            e.exec_ring_slots,
            std::mem::size_of::<crate::event::ExecEvent>(),
        ),
        (
            "egress_ring_slots",
            e.egress_ring_slots,
            std::mem::size_of::<crate::event::OrderChunk>(),
        ),
        (
            "journal_ring_slots",
            e.journal_ring_slots,
            std::mem::size_of::<crate::pipeline::JournalChunk>(),
        ),
    ] {
        let max = (RING_BYTES_MAX / slot_bytes.max(1)).next_power_of_two() / 2;
        if slots < 2 || !slots.is_power_of_two() || slots > max {
            out.error(
                engine.field_at(field),
                format!(
                    "`{field}` must be a power of two from 2 to {max} (a slot is {slot_bytes} bytes, a ring at most 4 GiB); got {slots}"
                ),
            );
        }
    }
    for (field, cpu) in [("core_cpu", e.core_cpu), ("io_cpu", e.io_cpu)] {
        if let Some(cpu) = cpu {
            let ids = core_affinity::get_core_ids().unwrap_or_default();
            if !ids.iter().any(|c| c.id == cpu) {
                out.error(
                    engine.field_at(field),
                    format!(
                        "`{field}` = {cpu} is not a CPU this process may run on (it may use {})",
                        cpu_list(&ids)
                    ),
                );
            }
        }
    }
    let places = e.orders_per_subscription;
    if !(crate::order::ORDERS_PER_DECISION_MAX..=crate::order::ORDERS_PER_SUBSCRIPTION_MAX)
        .contains(&places)
    {
        out.error(
            engine.field_at("orders_per_subscription"),
            format!(
                "`orders_per_subscription` must be in {}..={} (a flip needs two places); got {places}",
                crate::order::ORDERS_PER_DECISION_MAX,
                crate::order::ORDERS_PER_SUBSCRIPTION_MAX
            ),
        );
    }
    let resync = engine.get("resync").unwrap_or(engine);
    if e.resync.backoff_ms == 0 || e.resync.backoff_max_ms < e.resync.backoff_ms {
        out.error(
            resync.field_at("backoff_ms"),
            format!(
                "`backoff_ms` must be at least 1 and at most `backoff_max_ms`; got {} and {}",
                e.resync.backoff_ms, e.resync.backoff_max_ms
            ),
        );
    }
    if e.resync.backoff_max_ms > 3_600_000 {
        out.error(
            resync.field_at("backoff_max_ms"),
            format!(
                "`backoff_max_ms` is at most one hour (3600000); got {}",
                e.resync.backoff_max_ms
            ),
        );
    }
    if e.resync.unfilled_opening == crate::config::RejectPolicy::Reduce {
        out.error(
            resync.field_at("unfilled_opening"),
            "`unfilled_opening` is `retry`, `skip` or `out_of_sync` (an unfilled remainder was not refused for its size)",
        );
    }
    if e.max_retries == 0 || e.max_retries > 64 {
        out.error(
            engine.field_at("max_retries"),
            format!("`max_retries` must be in 1..=64; got {}", e.max_retries),
        );
    }
    if e.venue_down_alarm_ms == 0 {
        out.error(
            engine.field_at("venue_down_alarm_ms"),
            "`venue_down_alarm_ms` must be positive",
        );
    }
    for (field, n) in [
        ("max_working_orders", e.max_working_orders),
        ("dedup_window", e.dedup_window),
    ] {
        if n == 0 || n > COUNT_MAX {
            out.error(
                engine.field_at(field),
                format!("`{field}` must be in 1..={COUNT_MAX}; got {n}"),
            );
        }
    }

    check_journal(cfg, sites, out);
    check_metrics(cfg, sites, out);
    let venues = check_venues(cfg, sites, out);
    let symbols = check_symbols(cfg, sites, &venues, out);
    check_sources(cfg, sites, out);
    if let Some(kinds) = out.kinds {
        let venues: Vec<Item<'_>> = (0..cfg.venues.len())
            .map(|i| Item::new(sites.item(&sites.items("venues"), i), &out.base))
            .collect();
        let sources: Vec<Item<'_>> = (0..cfg.sources.len())
            .map(|i| Item::new(sites.item(&sites.items("sources"), i), &out.base))
            .collect();
        let problems = kinds.check_together(cfg, &venues, &sources);
        for p in problems {
            out.problem(p);
        }
    }
    let leaders = check_leaders(cfg, sites, &symbols, out);
    let followers = check_followers(cfg, sites, &symbols, out);
    check_subscriptions(cfg, sites, &leaders, &followers, out);
    check_removed(cfg, sites, out);
}

/// Names already seen in one section, with where each was first defined.
type Seen = HashMap<String, At>;

fn check_venues(cfg: &Config, sites: &Sites<'_>, out: &mut Loader) -> Seen {
    let items = sites.items("venues");
    let mut seen = Seen::new();
    if cfg.venues.len() > usize::from(u16::MAX) {
        out.error(
            sites.root.field_at("venues"),
            format!(
                "{} venues; at most {} are supported",
                cfg.venues.len(),
                u16::MAX
            ),
        );
    }
    for (i, v) in cfg.venues.iter().enumerate() {
        let item = sites.item(&items, i);
        define(out, &mut seen, "venue", &v.name, item.field_at("name"));
        out.kinds_check(item, |kinds, table| kinds.check_venue(table));
    }
    seen
}

fn check_symbols(cfg: &Config, sites: &Sites<'_>, venues: &Seen, out: &mut Loader) -> Seen {
    let items = sites.items("symbols");
    let mut seen = Seen::new();
    if cfg.symbols.len() > usize::from(u16::MAX) {
        out.error(
            sites.root.field_at("symbols"),
            format!(
                "{} symbols; at most {} are supported",
                cfg.symbols.len(),
                u16::MAX
            ),
        );
    }
    for (i, s) in cfg.symbols.iter().enumerate() {
        let item = sites.item(&items, i);
        define(out, &mut seen, "symbol", &s.name, item.field_at("name"));
        let lot_ok = positive(out, item, "lot_size", s.lot_size);
        let tick_ok = positive(out, item, "tick_size", s.tick_size);
        if lot_ok && tick_ok {
            let product = s.lot_size.checked_mul(s.tick_size);
            let units = product.and_then(|p| Money::from_decimal(p).ok());
            if !matches!(units, Some(m) if m.0 > 0) {
                out.error(
                    item.field_at("tick_size"),
                    format!(
                        "`lot_size` × `tick_size` = {} must be a whole number of 1e-8 \
                         (notional is counted in units of 1e-8)",
                        product.map_or_else(|| "overflow".to_string(), |p| p.to_string())
                    ),
                );
            }
        }
        if let Some(min_qty) = s.min_qty {
            if positive(out, item, "min_qty", min_qty)
                && lot_ok
                && Lots::from_decimal(min_qty, s.lot_size).is_err()
            {
                out.error(
                    item.field_at("min_qty"),
                    format!(
                        "`min_qty` {min_qty} must be a whole multiple of `lot_size` {}",
                        s.lot_size
                    ),
                );
            }
        }
        if let Some(min_notional) = s.min_notional {
            if min_notional.is_sign_negative() && !min_notional.is_zero() {
                out.error(
                    item.field_at("min_notional"),
                    format!("`min_notional` must not be negative, got {min_notional}"),
                );
            } else {
                fits_money(out, item, "min_notional", min_notional);
            }
        }
        refer(out, venues, "venue", &s.venue, item.field_at("venue"));
    }
    seen
}

fn check_sources(cfg: &Config, sites: &Sites<'_>, out: &mut Loader) {
    let items = sites.items("sources");
    for i in 0..cfg.sources.len() {
        let item = sites.item(&items, i);
        out.kinds_check(item, |kinds, table| kinds.check_source(table));
    }
}

fn check_metrics(cfg: &Config, sites: &Sites<'_>, out: &mut Loader) {
    let Some(m) = &cfg.metrics else { return };
    if m.address.parse::<std::net::SocketAddr>().is_err() {
        let item = sites.root.get("metrics").unwrap_or(sites.root);
        out.error(
            item.field_at("address"),
            format!(
                "`address` must be an IP address and port such as \"127.0.0.1:9464\", got {:?}",
                m.address
            ),
        );
    }
}

fn check_journal(cfg: &Config, sites: &Sites<'_>, out: &mut Loader) {
    let Some(j) = &cfg.journal else { return };
    let item = sites.root.get("journal").unwrap_or(sites.root);
    if j.segment_mib == 0 || j.segment_mib > 1 << 20 {
        out.error(
            item.field_at("segment_mib"),
            format!(
                "`segment_mib` must be 1 to {}, got {}",
                1 << 20,
                j.segment_mib
            ),
        );
    }
    if j.flush_every_ms == 0 {
        out.error(
            item.field_at("flush_every_ms"),
            "`flush_every_ms` must be positive",
        );
    }
}

/// `removed` is how the journal keeps what a reload removed; in a person's file it
/// would mean nothing the file cannot say by leaving the item out.
fn check_removed(cfg: &Config, sites: &Sites<'_>, out: &mut Loader) {
    if out.model {
        // A journal's model: a subscription in force names a leader and a
        // follower in force (`Config::arranged_after` never writes otherwise).
        let gone = |list: Vec<(&str, bool)>| -> std::collections::HashSet<String> {
            list.into_iter()
                .filter(|(_, r)| *r)
                .map(|(id, _)| id.to_string())
                .collect()
        };
        let leaders = gone(
            cfg.leaders
                .iter()
                .map(|l| (l.id.as_str(), l.removed))
                .collect(),
        );
        let followers = gone(
            cfg.followers
                .iter()
                .map(|f| (f.id.as_str(), f.removed))
                .collect(),
        );
        // A leader's or follower's symbols in force name symbols in force (a
        // removed symbol takes no new input, so a list in force has no use for it).
        let symbols = gone(
            cfg.symbols
                .iter()
                .map(|s| (s.name.as_str(), s.removed))
                .collect(),
        );
        let lists = [
            (
                "leaders",
                "leader",
                cfg.leaders
                    .iter()
                    .map(|l| {
                        let list = l.profile.as_ref().and_then(|p| p.symbols.as_ref());
                        (l.removed, l.id.as_str(), list)
                    })
                    .collect::<Vec<_>>(),
            ),
            (
                "followers",
                "follower",
                cfg.followers
                    .iter()
                    .map(|f| (f.removed, f.id.as_str(), f.symbols.as_ref()))
                    .collect(),
            ),
        ];
        for (table, what, items) in lists {
            let nodes = sites.items(table);
            for (i, (removed, id, list)) in items.into_iter().enumerate() {
                let Some(list) = list.filter(|_| !removed) else {
                    continue;
                };
                let item = sites.item(&nodes, i);
                let item = match what {
                    "leader" => item.get("profile").unwrap_or(item),
                    _ => item,
                };
                for (j, name) in list.iter().enumerate() {
                    if symbols.contains(name.as_str()) {
                        out.error(
                            item.element_at("symbols", j),
                            format!(
                                "{what} `{id}` is in force but its symbol `{name}` was removed"
                            ),
                        );
                    }
                }
            }
        }
        let nodes = sites.items("subscriptions");
        for (i, sub) in cfg.subscriptions.iter().enumerate() {
            if sub.removed {
                continue;
            }
            for (what, id, set) in [
                ("leader", &sub.leader, &leaders),
                ("follower", &sub.follower, &followers),
            ] {
                if set.contains(id.as_str()) {
                    out.error(
                        sites.item(&nodes, i).field_at(what),
                        format!(
                            "subscription `{}` is in force but its {what} `{id}` was removed",
                            crate::model::subscription_id(sub)
                        ),
                    );
                }
            }
        }
        return;
    }
    let marked = [
        (
            "symbols",
            "symbol",
            cfg.symbols
                .iter()
                .map(|s| (s.removed, s.name.clone()))
                .collect::<Vec<_>>(),
        ),
        (
            "leaders",
            "leader",
            cfg.leaders
                .iter()
                .map(|l| (l.removed, l.id.clone()))
                .collect(),
        ),
        (
            "followers",
            "follower",
            cfg.followers
                .iter()
                .map(|f| (f.removed, f.id.clone()))
                .collect(),
        ),
        (
            "subscriptions",
            "subscription",
            cfg.subscriptions
                .iter()
                .map(|s| (s.removed, crate::model::subscription_id(s)))
                .collect(),
        ),
    ];
    for (table, what, items) in marked {
        let nodes = sites.items(table);
        for (i, (removed, id)) in items.into_iter().enumerate() {
            if removed {
                out.error(
                    sites.item(&nodes, i).field_at("removed"),
                    format!(
                        "`removed` is written by the engine into its journal, not by hand: to remove {what} `{id}`, delete it from the file and reload"
                    ),
                );
            }
        }
    }
}

fn check_leaders(cfg: &Config, sites: &Sites<'_>, symbols: &Seen, out: &mut Loader) -> Seen {
    let items = sites.items("leaders");
    let mut seen = Seen::new();
    for (i, l) in cfg.leaders.iter().enumerate() {
        let item = sites.item(&items, i);
        define(out, &mut seen, "leader", &l.id, item.field_at("id"));
        positive_money(out, item, "equity", l.equity);
        let Some(profile) = &l.profile else { continue };
        let profile_item = item.get("profile").unwrap_or(item);
        if let Some(max) = profile.max_position_notional {
            positive_money(out, profile_item, "max_position_notional", max);
        }
        for (j, name) in profile.symbols.iter().flatten().enumerate() {
            let at = profile_item.element_at("symbols", j);
            refer(out, symbols, "symbol", name, at);
        }
    }
    seen
}

fn check_followers(cfg: &Config, sites: &Sites<'_>, symbols: &Seen, out: &mut Loader) -> Seen {
    let items = sites.items("followers");
    let mut seen = Seen::new();
    for (i, f) in cfg.followers.iter().enumerate() {
        let item = sites.item(&items, i);
        define(out, &mut seen, "follower", &f.id, item.field_at("id"));
        let equity_ok = positive_money(out, item, "equity", f.equity);
        if let Some(lev) = f.max_leverage {
            if positive(out, item, "max_leverage", lev) && equity_ok {
                product_fits_money(out, item, ("max_leverage", lev), ("equity", f.equity));
            }
        }
        if f.max_open_positions == Some(0) {
            out.error(
                item.field_at("max_open_positions"),
                "`max_open_positions` must be positive",
            );
        }
        if let Some(limit) = f.daily_loss_limit {
            positive_money(out, item, "daily_loss_limit", limit);
        }
        for (j, name) in f.symbols.iter().flatten().enumerate() {
            refer(out, symbols, "symbol", name, item.element_at("symbols", j));
        }
    }
    seen
}

fn check_subscriptions(
    cfg: &Config,
    sites: &Sites<'_>,
    leaders: &Seen,
    followers: &Seen,
    out: &mut Loader,
) {
    let items = sites.items("subscriptions");
    let mut seen = Seen::new();
    for (i, s) in cfg.subscriptions.iter().enumerate() {
        let item = sites.item(&items, i);
        let id = crate::model::subscription_id(s);
        let id_at = if s.id.is_some() {
            item.field_at("id")
        } else {
            item.at
        };
        define(out, &mut seen, "subscription", &id, id_at);
        refer(
            out,
            followers,
            "follower",
            &s.follower,
            item.field_at("follower"),
        );
        refer(out, leaders, "leader", &s.leader, item.field_at("leader"));
        let allocation_ok = positive_money(out, item, "allocation", s.allocation);

        let mode = mode_name(s.mode);
        for (field, value, owner) in [
            ("multiplier", s.multiplier, ModeConfig::Proportional),
            ("ratio", s.ratio, ModeConfig::FixedRatio),
            ("amount", s.amount, ModeConfig::FixedAmount),
            ("leverage", s.leverage, ModeConfig::FixedLeverage),
        ] {
            let Some(v) = value else {
                // `multiplier` has a default (1); the other mode keys do not.
                if owner == s.mode && owner != ModeConfig::Proportional {
                    out.error(
                        item.field_at("mode"),
                        format!("mode {mode} needs `{field}`"),
                    );
                }
                continue;
            };
            if owner != s.mode {
                out.error(
                    item.field_at(field),
                    format!(
                        "`{field}` is only used by mode {}; this subscription's mode is {mode}",
                        mode_name(owner)
                    ),
                );
                continue;
            }
            if !positive(out, item, field, v) {
                continue;
            }
            match owner {
                ModeConfig::FixedAmount => {
                    fits_money(out, item, field, v);
                }
                ModeConfig::FixedLeverage if allocation_ok => {
                    product_fits_money(out, item, (field, v), ("allocation", s.allocation));
                }
                _ => {}
            }
        }

        if s.slippage_bps > 10_000 {
            out.error(
                item.field_at("slippage_bps"),
                format!(
                    "`slippage_bps` is in basis points: at most 10000, got {}",
                    s.slippage_bps
                ),
            );
        }
        for (field, v) in [
            ("max_order_notional", s.max_order_notional),
            ("max_position_notional", s.max_position_notional),
        ] {
            if let Some(v) = v {
                positive_money(out, item, field, v);
            }
        }
        for (field, v) in [
            ("max_position_pct", s.max_position_pct),
            ("total_stop_loss_pct", s.total_stop_loss_pct),
            ("leader_drawdown_pct", s.leader_drawdown_pct),
        ] {
            if let Some(v) = v {
                if v <= Decimal::ZERO || v > Decimal::ONE_HUNDRED {
                    out.error(
                        item.field_at(field),
                        format!("`{field}` is a percentage in (0, 100], got {v}"),
                    );
                }
            }
        }
    }
}

/// Record a definition of `name`; an error if it was already defined.
fn define(out: &mut Loader, seen: &mut Seen, what: &str, name: &str, at: At) {
    if name.trim().is_empty() {
        out.error(at, format!("{what} name must not be empty"));
        return;
    }
    if let Some(first) = seen.get(name) {
        let place = out.place(*first, at);
        out.error(
            at,
            format!("duplicate {what} `{name}` (first defined at {place})"),
        );
        return;
    }
    seen.insert(name.to_string(), at);
}

/// An error unless `name` was defined.
fn refer(out: &mut Loader, seen: &Seen, what: &str, name: &str, at: At) {
    if seen.contains_key(name) {
        return;
    }
    let mut known: Vec<&str> = seen.keys().map(String::as_str).collect();
    let hint = if known.is_empty() {
        format!("; no {what} is defined")
    } else if known.len() <= HINT_NAMES_MAX {
        known.sort_unstable();
        format!("; expected one of: {}", known.join(", "))
    } else {
        String::new()
    };
    out.error(at, format!("unknown {what} `{name}`{hint}"));
}

fn positive(out: &mut Loader, item: &Node, field: &str, v: Decimal) -> bool {
    if v > Decimal::ZERO {
        return true;
    }
    out.error(
        item.field_at(field),
        format!("`{field}` must be positive, got {v}"),
    );
    false
}

fn fits_money(out: &mut Loader, item: &Node, field: &str, v: Decimal) -> bool {
    if Money::from_decimal(v).is_ok() {
        return true;
    }
    out.error(
        item.field_at(field),
        format!("`{field}` {}", money_range(v)),
    );
    false
}

fn positive_money(out: &mut Loader, item: &Node, field: &str, v: Decimal) -> bool {
    positive(out, item, field, v) && fits_money(out, item, field, v)
}

/// `a × b` must be an amount of money (a cap or notional computed from both).
fn product_fits_money(
    out: &mut Loader,
    item: &Node,
    (a_name, a): (&str, Decimal),
    (b_name, b): (&str, Decimal),
) {
    let product = a.checked_mul(b).map(|p| p.round_dp(8));
    if product.is_some_and(|p| Money::from_decimal(p).is_ok()) {
        return;
    }
    let shown = product.map_or_else(|| "overflow".to_string(), |p| p.to_string());
    out.error(
        item.field_at(a_name),
        format!("`{a_name}` × `{b_name}` = {shown} is too large for an amount of money"),
    );
}

fn money_range(v: Decimal) -> String {
    format!(
        "{v} is not an amount of money: at most 8 decimal places and at most {}",
        Money(i64::MAX).to_decimal()
    )
}

fn mode_name(m: ModeConfig) -> &'static str {
    crate::codes::Coded::name(crate::model::Mode::from(m))
}

/// The item a `ModelError` is about, by its kind and name.
fn model_error_site(e: &ModelError, cfg: &Config, sites: &Sites<'_>) -> At {
    let (what, name) = match e {
        ModelError::Unit { what, name, .. }
        | ModelError::Unknown { what, name, .. }
        | ModelError::Duplicate { what, name }
        | ModelError::Invalid { what, name, .. } => (*what, name.as_str()),
    };
    let found = match what {
        "symbol" => cfg.symbols.iter().position(|s| s.name == name),
        "venue" => cfg.venues.iter().position(|v| v.name == name),
        "leader" => cfg.leaders.iter().position(|l| l.id == name),
        "follower" => cfg.followers.iter().position(|f| f.id == name),
        "subscription" => cfg
            .subscriptions
            .iter()
            .position(|s| crate::model::subscription_id(s) == name),
        _ => None,
    };
    let section = format!("{what}s");
    match found {
        Some(i) => sites.item(&sites.items(&section), i).at,
        None => sites.root.field_at(&section),
    }
}

/// The folder of `path` as an absolute path: relative paths in a config are taken
/// from its folder once, at load, so nothing later depends on the working directory
/// (a restart from elsewhere, the sidecar, a report).
fn absolute_parent(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn read_bytes(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > max {
        return Err(format!("the file is larger than {max} bytes"));
    }
    Ok(bytes)
}

fn read_text(path: &Path, max: usize) -> Result<String, (At, String)> {
    let bytes = read_bytes(path, max).map_err(|e| (At::file(TOML_FILE), e))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let text = String::from_utf8_lossy(&bytes[..valid]);
        let at = LineIndex::new(&text).at(TOML_FILE, valid);
        (at, "not valid UTF-8".to_string())
    })
}

/// The line a CSV record starts on. csv positions a record where the reader
/// stood before it, so skip the comment and empty lines that csv skips too.
fn csv_line(data: &[u8], pos: &csv::Position) -> usize {
    let mut line = usize::try_from(pos.line()).unwrap_or(usize::MAX);
    let mut rest = usize::try_from(pos.byte())
        .ok()
        .and_then(|start| data.get(start..))
        .unwrap_or_default();
    loop {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let text = &rest[..end];
        let skipped = text.first() == Some(&CSV_COMMENT) || matches!(text, b"\n" | b"\r\n" | b"\r");
        if !skipped || end == rest.len() {
            return line;
        }
        line = line.saturating_add(1);
        rest = &rest[end..];
    }
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields; the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("field {} is not valid UTF-8", err.field() + 1)
        }
        _ => e.to_string(),
    }
}

/// `message` cut to `MESSAGE_CHARS_MAX` characters.
fn clip(message: &str) -> String {
    match message.char_indices().nth(MESSAGE_CHARS_MAX) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_string(),
    }
}

/// The TOML document as a tree that remembers where each key and value was.
mod tree {
    use rust_decimal::Decimal;
    use serde::de::{self, Deserializer};
    use serde::Deserialize;
    use std::fmt;
    use std::ops::Range;
    use std::str::FromStr;
    use toml_edit::{ImDocument, Item, TableLike, TomlError, Value};

    /// A position: file index (into the loader's files), 1-based line and column
    /// (0 when unknown). Ordered so that errors sort by file, line, column.
    #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub(super) struct At {
        pub file: usize,
        pub line: usize,
        pub column: usize,
    }

    impl At {
        pub(super) fn file(file: usize) -> At {
            At {
                file,
                line: 0,
                column: 0,
            }
        }
    }

    #[derive(Debug)]
    pub(super) struct Node {
        pub at: At,
        pub kind: Kind,
    }

    #[derive(Debug)]
    pub(super) enum Kind {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
        /// Not used by any config field; kept to say what was found.
        Datetime,
        Array(Vec<Node>),
        Table(Vec<(Key, Node)>),
        /// A CSV cell: text that is parsed as whatever type is asked for.
        Cell(String),
    }

    #[derive(Debug)]
    pub(super) struct Key {
        pub name: String,
        pub at: At,
    }

    impl Node {
        pub(super) fn at(at: At, kind: Kind) -> Node {
            Node { at, kind }
        }

        /// The value of `key` when this is a table.
        pub(super) fn get(&self, key: &str) -> Option<&Node> {
            match &self.kind {
                Kind::Table(entries) => entries.iter().find(|(k, _)| k.name == key).map(|e| &e.1),
                _ => None,
            }
        }

        /// Where the value of `key` is, or where this node is when it has no `key`.
        pub(super) fn field_at(&self, key: &str) -> At {
            self.get(key).map_or(self.at, |n| n.at)
        }

        /// Where element `i` of the array at `key` is, as near as is known.
        pub(super) fn element_at(&self, key: &str, i: usize) -> At {
            match self.get(key) {
                Some(Node {
                    kind: Kind::Array(items),
                    at,
                }) => items.get(i).map_or(*at, |n| n.at),
                Some(n) => n.at,
                None => self.at,
            }
        }
    }

    /// The tree of the TOML `text` (file number `file`), and the floats in it that
    /// a binary float cannot hold exactly: every number in the config is an exact
    /// decimal. toml_edit is the parser that `toml` runs, so a syntax error reads
    /// as `toml`'s would, and it keeps the span of every key and value.
    pub(super) fn parse(text: &str, file: usize) -> Result<(Node, Vec<(At, String)>), TomlError> {
        let doc = ImDocument::parse(text)?;
        let mut builder = Builder {
            index: LineIndex::new(text),
            file,
            inexact: Vec::new(),
        };
        let root = builder.item(doc.as_item(), At::file(file), "value");
        Ok((root, builder.inexact))
    }

    /// Its recursion follows the document's nesting, which the parser bounds:
    /// toml_edit refuses deeper nesting unless built with `unbounded`, which no
    /// crate here enables.
    struct Builder<'t> {
        index: LineIndex<'t>,
        file: usize,
        inexact: Vec<(At, String)>,
    }

    impl Builder<'_> {
        /// Where `span` starts; `fallback` (the key's place) when the parser gave
        /// none, as for the implicit table of a dotted key.
        fn at(&self, span: Option<Range<usize>>, fallback: At) -> At {
            span.map_or(fallback, |s| self.index.at(self.file, s.start))
        }

        /// `key` names the value in a message about an inexact float.
        fn item(&mut self, item: &Item, fallback: At, key: &str) -> Node {
            let at = self.at(item.span(), fallback);
            let kind = match item {
                Item::Value(value) => return self.value(value, fallback, key),
                Item::Table(table) => self.table(table, at),
                Item::ArrayOfTables(tables) => Kind::Array(
                    tables
                        .iter()
                        .map(|table| Node::at(self.at(table.span(), at), self.table(table, at)))
                        .collect(),
                ),
                // Tables do not list empty slots, the only place one could be.
                Item::None => Kind::Table(Vec::new()),
            };
            Node { at, kind }
        }

        fn value(&mut self, value: &Value, fallback: At, key: &str) -> Node {
            let at = self.at(value.span(), fallback);
            let kind = match value {
                Value::String(s) => Kind::Str(s.value().clone()),
                Value::Integer(i) => Kind::Int(*i.value()),
                Value::Float(f) => {
                    let literal = f.span().and_then(|s| self.index.text.get(s));
                    if let Some(literal) = literal.filter(|l| !float_is_exact(l, *f.value())) {
                        self.inexact.push((
                            at,
                            format!(
                                "`{key}` = {literal} is not exact as a TOML float; \
                                 write the decimal as a string: \"{literal}\""
                            ),
                        ));
                    }
                    Kind::Float(*f.value())
                }
                Value::Boolean(b) => Kind::Bool(*b.value()),
                Value::Datetime(_) => Kind::Datetime,
                Value::Array(items) => {
                    Kind::Array(items.iter().map(|v| self.value(v, at, key)).collect())
                }
                Value::InlineTable(table) => self.table(table, at),
            };
            Node { at, kind }
        }

        /// A key without a span stands where its value does.
        fn table(&mut self, table: &dyn TableLike, at: At) -> Kind {
            let entries = table
                .iter()
                .filter_map(|(name, _)| table.get_key_value(name))
                .map(|(key, item)| {
                    let spanned_at = self.at(key.span(), at);
                    let value = self.item(item, spanned_at, key.get());
                    let at = match key.span() {
                        Some(_) => spanned_at,
                        None => value.at,
                    };
                    let name = key.get().to_string();
                    (Key { name, at }, value)
                })
                .collect();
            Kind::Table(entries)
        }
    }

    /// Whether the decimal that `value` turns into (rust_decimal reads floats
    /// through their shortest representation) equals the literal as written.
    fn float_is_exact(literal: &str, value: f64) -> bool {
        let written: String = literal.chars().filter(|&c| c != '_').collect();
        let exact = Decimal::from_str(&written).or_else(|_| Decimal::from_scientific(&written));
        let seen = Decimal::from_str(&value.to_string());
        match (exact, seen) {
            (Ok(exact), Ok(seen)) => exact == seen,
            // inf, nan, or beyond Decimal's range: the Decimal parse reports it.
            _ => true,
        }
    }

    /// Byte offset → line and column.
    pub(super) struct LineIndex<'t> {
        text: &'t str,
        line_starts: Vec<usize>,
    }

    impl<'t> LineIndex<'t> {
        pub(super) fn new(text: &'t str) -> LineIndex<'t> {
            let mut line_starts = vec![0];
            line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
            LineIndex { text, line_starts }
        }

        pub(super) fn at(&self, file: usize, offset: usize) -> At {
            let offset = offset.min(self.text.len());
            let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
            let start = self.line_starts[line - 1];
            let column = match self.text.get(start..offset) {
                Some(prefix) => prefix.chars().count() + 1,
                None => offset - start + 1,
            };
            At { file, line, column }
        }
    }

    /// The field names of a struct `T` (empty if `T` is not a struct): what it
    /// passes to `deserialize_struct`.
    pub fn struct_fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        match T::deserialize(Probe) {
            Err(Fields(fields)) => fields,
            Ok(_) => &[],
        }
    }

    struct Probe;

    #[derive(Debug)]
    struct Fields(&'static [&'static str]);

    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }

    impl std::error::Error for Fields {}

    impl de::Error for Fields {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Fields(&[])
        }
    }

    impl<'de> Deserializer<'de> for Probe {
        type Error = Fields;

        fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }

        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
}

/// A serde deserializer over the tree whose errors carry the position of the node
/// (or key) that failed and the path of keys from the item down to it.
mod de {
    use super::tree::{At, Key, Kind, Node};
    use serde::de::{
        self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
        Visitor,
    };
    use std::fmt;

    #[derive(Debug)]
    pub(super) struct DeError {
        message: String,
        /// Where it failed: the innermost node that knew.
        pub at: Option<At>,
        /// Keys from the failing value up to the item, innermost first.
        keys: Vec<String>,
        /// Set when a required field was absent (CSV turns this into a column error).
        pub missing_field: Option<&'static str>,
    }

    impl DeError {
        fn at(mut self, at: At) -> DeError {
            self.at.get_or_insert(at);
            self
        }

        fn in_key(mut self, key: &str) -> DeError {
            self.keys.push(key.to_string());
            self
        }

        /// The message, prefixed with the key path when there is one.
        pub(super) fn render(&self) -> String {
            if self.keys.is_empty() {
                return self.message.clone();
            }
            let path: Vec<&str> = self.keys.iter().rev().map(String::as_str).collect();
            format!("`{}`: {}", path.join("."), self.message)
        }
    }

    impl fmt::Display for DeError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.render())
        }
    }

    impl std::error::Error for DeError {}

    impl de::Error for DeError {
        fn custom<T: fmt::Display>(msg: T) -> Self {
            DeError {
                message: msg.to_string(),
                at: None,
                keys: Vec::new(),
                missing_field: None,
            }
        }

        fn missing_field(field: &'static str) -> Self {
            DeError {
                missing_field: Some(field),
                ..DeError::custom(format_args!("missing field `{field}`"))
            }
        }
    }

    #[derive(Copy, Clone)]
    pub(super) struct NodeDe<'a>(pub &'a Node);

    /// Some entries of a table, deserialized as if they were the whole table.
    pub(super) struct EntriesDe<'a>(pub &'a [(Key, Node)], pub At);

    fn unexpected(kind: &Kind) -> Unexpected<'_> {
        match kind {
            Kind::Str(s) | Kind::Cell(s) => Unexpected::Str(s),
            Kind::Int(i) => Unexpected::Signed(*i),
            Kind::Float(f) => Unexpected::Float(*f),
            Kind::Bool(b) => Unexpected::Bool(*b),
            Kind::Datetime => Unexpected::Other("a date-time"),
            Kind::Array(_) => Unexpected::Seq,
            Kind::Table(_) => Unexpected::Map,
        }
    }

    /// A CSV cell read as a number or bool: parse it, or say what it is not.
    macro_rules! cell_parse {
        ($($method:ident => $ty:ty, $visit:ident;)*) => {$(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                let node = self.0;
                match &node.kind {
                    Kind::Cell(s) => match s.parse::<$ty>() {
                        Ok(v) => visitor.$visit(v),
                        Err(_) => Err(de::Error::invalid_value(Unexpected::Str(s), &visitor)),
                    }
                    .map_err(|e: DeError| e.at(node.at)),
                    _ => self.deserialize_any(visitor),
                }
            }
        )*};
    }

    impl<'de> Deserializer<'de> for NodeDe<'_> {
        type Error = DeError;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let node = self.0;
            match &node.kind {
                Kind::Str(s) | Kind::Cell(s) => visitor.visit_str(s),
                Kind::Int(i) => visitor.visit_i64(*i),
                Kind::Float(f) => visitor.visit_f64(*f),
                Kind::Bool(b) => visitor.visit_bool(*b),
                Kind::Datetime => Err(de::Error::invalid_type(unexpected(&node.kind), &visitor)),
                Kind::Array(items) => visitor.visit_seq(Items(items.iter())),
                Kind::Table(entries) => visitor.visit_map(Entries::new(entries)),
            }
            .map_err(|e| e.at(node.at))
        }

        cell_parse! {
            deserialize_bool => bool, visit_bool;
            deserialize_i8 => i64, visit_i64;
            deserialize_i16 => i64, visit_i64;
            deserialize_i32 => i64, visit_i64;
            deserialize_i64 => i64, visit_i64;
            deserialize_u8 => u64, visit_u64;
            deserialize_u16 => u64, visit_u64;
            deserialize_u32 => u64, visit_u64;
            deserialize_u64 => u64, visit_u64;
            deserialize_f32 => f64, visit_f64;
            deserialize_f64 => f64, visit_f64;
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            visitor.visit_some(self).map_err(|e| e.at(self.0.at))
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, DeError> {
            visitor
                .visit_newtype_struct(self)
                .map_err(|e| e.at(self.0.at))
        }

        /// A CSV cell read as a list: its items separated by `|`.
        fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let node = self.0;
            let Kind::Cell(s) = &node.kind else {
                return self.deserialize_any(visitor);
            };
            let items: Vec<Node> = s
                .split('|')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Node::at(node.at, Kind::Cell(item.to_string())))
                .collect();
            visitor
                .visit_seq(Items(items.iter()))
                .map_err(|e| e.at(node.at))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, DeError> {
            let node = self.0;
            match &node.kind {
                Kind::Str(s) | Kind::Cell(s) => {
                    let variant: de::value::StringDeserializer<DeError> =
                        s.clone().into_deserializer();
                    visitor.visit_enum(variant)
                }
                other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
            }
            .map_err(|e| e.at(node.at))
        }

        /// Structs and maps only from tables (serde would also take an array).
        fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let node = self.0;
            match &node.kind {
                Kind::Table(entries) => visitor.visit_map(Entries::new(entries)),
                other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
            }
            .map_err(|e| e.at(node.at))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, DeError> {
            self.deserialize_map(visitor)
        }

        fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            visitor.visit_unit()
        }

        serde::forward_to_deserialize_any! {
            i128 u128 char str string bytes byte_buf unit unit_struct tuple
            tuple_struct identifier
        }
    }

    impl<'de> Deserializer<'de> for EntriesDe<'_> {
        type Error = DeError;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            visitor
                .visit_map(Entries::new(self.0))
                .map_err(|e| e.at(self.1))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct enum identifier ignored_any
        }
    }

    struct Items<'a>(std::slice::Iter<'a, Node>);

    impl<'de> SeqAccess<'de> for Items<'_> {
        type Error = DeError;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, DeError> {
            match self.0.next() {
                Some(node) => seed.deserialize(NodeDe(node)).map(Some),
                None => Ok(None),
            }
        }

        fn size_hint(&self) -> Option<usize> {
            Some(self.0.len())
        }
    }

    struct Entries<'a> {
        entries: std::slice::Iter<'a, (Key, Node)>,
        value: Option<&'a (Key, Node)>,
    }

    impl<'a> Entries<'a> {
        fn new(entries: &'a [(Key, Node)]) -> Entries<'a> {
            Entries {
                entries: entries.iter(),
                value: None,
            }
        }
    }

    impl<'de> MapAccess<'de> for Entries<'_> {
        type Error = DeError;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, DeError> {
            let Some(entry) = self.entries.next() else {
                return Ok(None);
            };
            self.value = Some(entry);
            let key: de::value::StrDeserializer<DeError> =
                entry.0.name.as_str().into_deserializer();
            seed.deserialize(key)
                .map(Some)
                .map_err(|e| e.at(entry.0.at))
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> Result<V::Value, DeError> {
            let Some((key, node)) = self.value.take() else {
                return Err(de::Error::custom("a value was asked for before its key"));
            };
            seed.deserialize(NodeDe(node))
                .map_err(|e| e.at(node.at).in_key(&key.name))
        }

        fn size_hint(&self) -> Option<usize> {
            Some(self.entries.len())
        }
    }
}
