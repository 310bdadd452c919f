-- The sidecar's tables as the report tests build them by hand: the columns the
-- reports read, in SQLite's loose types.
CREATE TABLE leader_fills (seq INTEGER PRIMARY KEY, leader_id TEXT, event_id TEXT, symbol TEXT,
  side TEXT, qty TEXT, price TEXT, position_after TEXT, order_id TEXT, order_qty TEXT,
  venue_ts INTEGER, recv_ts INTEGER, ignored TEXT NOT NULL DEFAULT '');
CREATE TABLE leader_positions (leader_id TEXT, symbol TEXT, qty TEXT, updated_seq INTEGER);
CREATE TABLE copy_instructions (seq INTEGER PRIMARY KEY, leader_fill_seq INTEGER, event_id TEXT,
  subscription_id TEXT, follower_id TEXT, leader_id TEXT, symbol TEXT, target TEXT, delta TEXT,
  sent TEXT, status TEXT, reason TEXT, config_revision INTEGER, resync TEXT NOT NULL DEFAULT '');
CREATE TABLE follower_orders (client_order_id TEXT PRIMARY KEY, seq INTEGER, instruction_seq INTEGER,
  event_id TEXT, subscription_id TEXT, follower_id TEXT, leader_id TEXT, venue TEXT, symbol TEXT,
  side TEXT, qty TEXT, limit_price TEXT, order_type TEXT, reduce_only INTEGER, status TEXT,
  filled_qty TEXT, reject_reason TEXT);
CREATE TABLE follower_fills (client_order_id TEXT, venue_trade_id TEXT, seq INTEGER, follower_id TEXT,
  subscription_id TEXT, symbol TEXT, side TEXT, qty TEXT, price TEXT, fee TEXT, ts INTEGER);
CREATE TABLE positions (subscription_id TEXT, symbol TEXT, follower_id TEXT, leader_id TEXT, qty TEXT,
  avg_price TEXT, realized_pnl TEXT, updated_seq INTEGER);
CREATE TABLE mark_prices (symbol TEXT, ts INTEGER, price TEXT);
CREATE TABLE leader_equity (leader_id TEXT, ts INTEGER, equity TEXT);
CREATE TABLE subscriptions (subscription_id TEXT, follower_id TEXT, leader_id TEXT, mode TEXT, allocation TEXT);
CREATE TABLE leaders (leader_id TEXT, equity TEXT);
CREATE TABLE followers (follower_id TEXT, equity TEXT);
CREATE TABLE audit_log (seq INTEGER, ts INTEGER, kind TEXT, subject TEXT, reason TEXT, detail TEXT);
CREATE TABLE symbols (name TEXT, lot_size TEXT, tick_size TEXT);
CREATE TABLE allocation_changes (seq INTEGER, subscription_id TEXT, follower_id TEXT, leader_id TEXT,
  ts INTEGER, allocation_before TEXT, allocation_after TEXT, config_revision TEXT);
CREATE TABLE follower_equity (seq INTEGER, follower_id TEXT, ts INTEGER, equity TEXT);
CREATE TABLE funding_payments (seq INTEGER, line INTEGER, ts INTEGER, symbol TEXT, leader_id TEXT,
  follower_id TEXT, subscription_id TEXT, position_qty TEXT, mark_price TEXT, rate TEXT, amount TEXT);
