// fixvenue: the FIX 4.4 test venue of issue 13, an exchange for fillcast's tests
// written on QuickFIX's own session layer (Debian's libquickfix-dev), so fillcast's
// FIX stack is proven against an engine the project did not write.
//
// Usage:
//   fixvenue --config FILE --dir DIR [--port N] [--dc-port M] [--control P]
//            [--dictionary FIX44.xml] [--replay FILE]
//
//   --config FILE      QuickFIX settings (gateways/fixvenue/fixvenue.cfg): two acceptor
//                      sessions told apart by VenueRole=order-entry|drop-copy, their
//                      comp ids, and the venue's rules in [DEFAULT] (see README.md).
//   --dir DIR          the venue's state: DIR/log (QuickFIX FileLog, every message),
//                      DIR/store (QuickFIX FileStore: sequence numbers and sent
//                      messages, so a ResendRequest is answered by QuickFIX itself),
//                      DIR/venue.journal (orders and fills, replayed at start so the
//                      venue keeps its orders and books across its own restart).
//   --port N           SocketAcceptPort of the order-entry session (overrides config).
//   --dc-port M        SocketAcceptPort of the drop-copy session (overrides config).
//   --control P        a TCP port on 127.0.0.1 for control commands (default: none).
//   --dictionary FILE  FIX44.xml for QuickFIX's validation (default: DataDictionary of
//                      the config, else spec/FIX44.xml beside the binary, where
//                      scripts/install-quickfix.sh puts Debian's).
//   --replay FILE      publish FILE's leader fills on the drop-copy session once it
//                      first logs on (same format as the `replay` command).
//
// Control commands, one per line; each answers one line, "ok ..." or "error ...":
//   fill LEADER SYMBOL SIDE QTY PX EXEC_ID [ORDER_ID ORDER_QTY [TS_NS]]
//       publish a leader's execution (35=8, 150=F) on the drop-copy session;
//       SIDE is buy|sell; ORDER_ID defaults to EXEC_ID and ORDER_QTY to QTY.
//   {"leader":..,"event_id":..,"symbol":..,"side":..,"qty":..,"price":..,"ts":..}
//       the same as one line of fillcast's leader-fill file (order_id, order_qty optional).
//   replay FILE   publish every line of FILE (fill commands or JSON lines; # comments).
//   dup           send the last drop-copy execution again with PossDupFlag=Y.
//   drop [dc|oe]  disconnect the drop-copy (default) or order-entry session.
//   price SYMBOL PX  the price market orders in SYMBOL fill at (the last leader fill
//                 in SYMBOL sets it too; MarketFillPrice in the config otherwise).
//   books [FILE]  positions per account and symbol from the fills the venue gave,
//                 and the leaders' from the executions it published, as JSON
//                 (written to FILE, or on the answer line).
//   status        which sessions are logged on, and counts.
//   quit          stop the venue.
//
// Order entry: NewOrderSingle is validated by QuickFIX with the FIX44 dictionary,
// then acked (150=0) and filled (150=F) at its limit price, or market orders at the
// market price; rules in the config let tests provoke the other paths: symbol
// RejectSymbol or account RejectAccount -> rejected (150=8, OrdRejReason 1 / 99);
// a repeated ClOrdID -> rejected (OrdRejReason 6) unless PossDupFlag=Y (ignored);
// qty above PartialFillAbove -> filled in 3 parts; symbol RestSymbol -> rests
// unfilled (an IOC is canceled at once, 150=4); an IOC above IocFillMax fills
// IocFillMax and the remainder is canceled. OrderCancelRequest cancels a resting
// order (150=4) or gets OrderCancelReject (35=9); OrderStatusRequest answers
// 150=I with the order's status, or 39=8 OrdRejReason 5 for an unknown ClOrdID.

#include "quickfix/Application.h"
#include "quickfix/FileLog.h"
#include "quickfix/FileStore.h"
#include "quickfix/Message.h"
#include "quickfix/Session.h"
#include "quickfix/SessionSettings.h"
#include "quickfix/ThreadedSocketAcceptor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------- decimals
// Quantities and prices are exact decimals: an integer count of 1e-9 units, read
// from and written to the wire as strings, never through a double.
const int kScaleDigits = 9;
const int64_t kScale = 1000000000;
const int64_t kUnitsMax = INT64_MAX / 10;

bool parseDecimal(const std::string& s, int64_t& out, int* decimals = nullptr) {
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  int64_t whole = 0, frac = 0;
  int intDigits = 0, fracDigits = 0;
  for (; i < s.size() && isdigit((unsigned char)s[i]); ++i, ++intDigits) {
    if (whole > kUnitsMax / kScale / 10) return false;
    whole = whole * 10 + (s[i] - '0');
  }
  if (i < s.size() && s[i] == '.') {
    for (++i; i < s.size() && isdigit((unsigned char)s[i]); ++i, ++fracDigits) {
      if (fracDigits >= kScaleDigits) return false;
      frac = frac * 10 + (s[i] - '0');
    }
  }
  if (i != s.size() || intDigits + fracDigits == 0) return false;
  for (int d = fracDigits; d < kScaleDigits; ++d) frac *= 10;
  out = whole * kScale + frac;
  if (neg) out = -out;
  if (decimals) *decimals = fracDigits;
  return true;
}

std::string formatDecimal(int64_t v) {
  std::string sign = v < 0 ? "-" : "";
  uint64_t a = v < 0 ? uint64_t(-(v + 1)) + 1 : uint64_t(v);
  std::string out = sign + std::to_string(a / kScale);
  uint64_t frac = a % kScale;
  if (frac) {
    char buf[16];
    snprintf(buf, sizeof buf, "%09llu", (unsigned long long)frac);
    std::string f(buf);
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += "." + f;
  }
  return out;
}

std::string utcTimestamp(int64_t ns) {
  time_t secs = time_t(ns / 1000000000);
  int64_t frac = ns % 1000000000;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y%m%d-%H:%M:%S", &tm);
  char out[80];
  if (frac % 1000000 == 0)
    snprintf(out, sizeof out, "%s.%03lld", buf, (long long)(frac / 1000000));
  else
    snprintf(out, sizeof out, "%s.%09lld", buf, (long long)frac);
  return out;
}

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

std::string jsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if ((unsigned char)c < 0x20) continue;
    out += c;
  }
  return out;
}

// One flat JSON object of string and number values, as in fillcast's leader-fill
// files; nested values are refused.
bool parseFlatJson(const std::string& s, std::map<std::string, std::string>& out,
                   std::string& err) {
  size_t i = 0;
  auto ws = [&] { while (i < s.size() && isspace((unsigned char)s[i])) ++i; };
  auto str = [&](std::string& v) {
    if (i >= s.size() || s[i] != '"') return false;
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      v += s[i];
    }
    if (i >= s.size()) return false;
    ++i;
    return true;
  };
  ws();
  if (i >= s.size() || s[i++] != '{') return err = "expected {", false;
  ws();
  if (i < s.size() && s[i] == '}') return true;
  for (;;) {
    std::string key, value;
    ws();
    if (!str(key)) return err = "expected a key at byte " + std::to_string(i), false;
    ws();
    if (i >= s.size() || s[i++] != ':') return err = "expected : after " + key, false;
    ws();
    if (i < s.size() && s[i] == '"') {
      if (!str(value)) return err = "unterminated string for " + key, false;
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != '}' && !isspace((unsigned char)s[i]))
        value += s[i++];
      if (value.empty() || value[0] == '{' || value[0] == '[')
        return err = "unsupported value for " + key, false;
      if (value == "null") value.clear();
    }
    out[key] = value;
    ws();
    if (i < s.size() && s[i] == ',') { ++i; continue; }
    if (i < s.size() && s[i] == '}') return true;
    return err = "expected , or } at byte " + std::to_string(i), false;
  }
}

void setStr(FIX::FieldMap& m, int tag, const std::string& v) { m.setField(tag, v); }

// ---------------------------------------------------------------- the venue
struct Order {
  std::string clOrdId, orderId, account, symbol, ordType, tif;
  char side = '1';
  int64_t qty = 0, price = 0, cum = 0, lastPx = 0;
  int qtyDecimals = 0;
  char status = '0';  // OrdStatus: 0 new, 1 partial, 2 filled, 4 canceled, 8 rejected
  int execs = 0;      // ExecIDs given so far: "<OrderID>-<n>"
};

struct Rules {
  std::string rejectSymbol = "REJECT", rejectAccount = "REJECTME", restSymbol = "REST";
  int64_t partialFillAbove = 10 * kScale;
  int64_t iocFillMax = 0;  // 0: no limit
  int64_t marketFillPrice = 100 * kScale;
};

struct DropCopy {
  std::string leader, symbol, execId, orderId, ts;
  char side = '1';
  int64_t qty = 0, px = 0, orderQty = 0;
};

class Venue : public FIX::Application {
 public:
  Venue(const Rules& rules, const std::string& dir) : rules_(rules), dir_(dir) {}

  FIX::SessionID oe, dc;
  std::string replayOnLogon;

  // Replays DIR/venue.journal so the orders and books outlive a restart. One event a
  // line: N (new order), F (fill), S (status change), D (duplicate ClOrdID),
  // I (PossDup ignored), L (leader execution published), P (market price).
  void load() {
    std::ifstream in(dir_ + "/venue.journal");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      std::vector<std::string> w = words(line);
      if (w.empty()) continue;
      ++n;
      if (w[0] == "N" && w.size() == 11) {
        Order o;
        o.clOrdId = w[1];
        o.orderId = w[2];
        o.account = w[3] == "-" ? "" : w[3];
        o.symbol = w[4];
        o.side = w[5][0];
        parseDecimal(w[6], o.qty, &o.qtyDecimals);
        o.ordType = w[7];
        parseDecimal(w[8] == "-" ? "0" : w[8], o.price);
        o.tif = w[9] == "-" ? "" : w[9];
        o.execs = std::stoi(w[10]);
        orders_[o.clOrdId] = o;
        ++ordersSeen_;
      } else if (w[0] == "F" && w.size() == 5 && orders_.count(w[1])) {
        Order& o = orders_[w[1]];
        int64_t q, px;
        parseDecimal(w[2], q);
        parseDecimal(w[3], px);
        applyFill(o, q, px);
        o.execs = std::stoi(w[4]);
        ++fills_;
      } else if (w[0] == "S" && w.size() == 4 && orders_.count(w[1])) {
        orders_[w[1]].status = w[2][0];
        orders_[w[1]].execs = std::stoi(w[3]);
        if (w[2] == "8") ++rejects_;
      } else if (w[0] == "L" && w.size() == 7) {
        int64_t q, px;
        parseDecimal(w[4], q);
        parseDecimal(w[6], px);
        leaders_[w[1]][w[2]] += w[3] == "1" ? q : -q;
        LeaderOrder& lo = leaderOrders_[w[1]][w[5]];
        lo.cum += q;
        lo.notional += (__int128)q * px;
        ++dcPublished_;
      } else if (w[0] == "D" && w.size() == 2) {
        ++duplicates_;
      } else if (w[0] == "I" && w.size() == 2) {
        ++possDupIgnored_;
      } else if (w[0] == "P" && w.size() == 3) {
        parseDecimal(w[2], marketPx_[w[1]]);
      } else {
        std::cerr << "fixvenue: " << dir_ << "/venue.journal line " << n
                  << ": not understood, ignored: " << line << std::endl;
      }
    }
    journal_.open(dir_ + "/venue.journal", std::ios::app);
    if (!journal_) throw std::runtime_error("cannot append to " + dir_ + "/venue.journal");
    std::cout << "fixvenue: " << orders_.size() << " orders from " << dir_
              << "/venue.journal" << std::endl;
  }

  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID& id) override {
    std::cout << "fixvenue: logon " << id.toString() << std::endl;
    if (id == dc && !replayOnLogon.empty()) {
      std::string file = replayOnLogon;
      replayOnLogon.clear();
      // Not on this thread: it holds the session while QuickFIX calls us.
      std::thread([this, file] { std::cout << "fixvenue: " << replay(file) << std::endl; }).detach();
    }
  }
  void onLogout(const FIX::SessionID& id) override {
    std::cout << "fixvenue: logout " << id.toString() << std::endl;
  }
  void toAdmin(FIX::Message&, const FIX::SessionID&) override {}
  // Session::send strips PossDupFlag and OrigSendingTime from what it is given, so
  // `dup` marks its copy here, after QuickFIX has filled in the header. QuickFIX
  // calls toApp on the sending thread; a resend on the session's own thread sees
  // its own, empty, t_dupOrigSendingTime.
  void toApp(FIX::Message& m, const FIX::SessionID& id) throw(FIX::DoNotSend) override {
    if (id == dc && !t_dupOrigSendingTime.empty()) {
      setStr(m.getHeader(), FIX::FIELD::PossDupFlag, "Y");
      setStr(m.getHeader(), FIX::FIELD::OrigSendingTime, t_dupOrigSendingTime);
      t_dupOrigSendingTime.clear();
    }
  }
  void fromAdmin(const FIX::Message&, const FIX::SessionID&) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::RejectLogon) override {}

  void fromApp(const FIX::Message& m, const FIX::SessionID& id) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::UnsupportedMessageType) override {
    if (!(id == oe)) throw FIX::UnsupportedMessageType();
    const std::string& type = m.getHeader().getField(FIX::FIELD::MsgType);
    std::vector<FIX::Message> out;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (type == "D")
        newOrder(m, out);
      else if (type == "F")
        cancel(m, out);
      else if (type == "H")
        status(m, out);
      else
        throw FIX::UnsupportedMessageType();
    }
    for (FIX::Message& r : out) FIX::Session::sendToTarget(r, id);
  }

  // ---- control commands
  std::string command(const std::string& line) {
    std::vector<std::string> w = words(line);
    if (w.empty() || w[0][0] == '#') return "ok";
    if (w[0][0] == '{') return publishJson(line);
    if (w[0] == "fill") return publishWords(w);
    if (w[0] == "replay" && w.size() == 2) return replay(w[1]);
    if (w[0] == "dup" && w.size() == 1) return dup();
    if (w[0] == "drop" && w.size() <= 2) {
      bool toOe = w.size() == 2 && w[1] == "oe";
      if (w.size() == 2 && !toOe && w[1] != "dc") return "error: drop dc|oe";
      FIX::Session* s = FIX::Session::lookupSession(toOe ? oe : dc);
      if (!s) return "error: no session";
      s->disconnect();
      return std::string("ok dropped ") + (toOe ? "oe" : "dc");
    }
    if (w[0] == "price" && w.size() == 3) {
      std::lock_guard<std::mutex> l(mu_);
      if (!parseDecimal(w[2], marketPx_[w[1]])) return "error: price is not a decimal: " + w[2];
      journal("P " + w[1] + " " + w[2]);
      return "ok";
    }
    if (w[0] == "books" && w.size() <= 2) {
      std::string json = books();
      if (w.size() == 1) return "ok " + json;
      std::string tmp = w[1] + ".tmp";
      std::ofstream f(tmp);
      f << json << "\n";
      f.close();
      if (!f || rename(tmp.c_str(), w[1].c_str()) != 0) return "error: cannot write " + w[1];
      return "ok " + w[1];
    }
    if (w[0] == "status" && w.size() == 1) {
      std::lock_guard<std::mutex> l(mu_);
      std::ostringstream s;
      s << "ok oe=" << (loggedOn(oe) ? "up" : "down") << " dc=" << (loggedOn(dc) ? "up" : "down")
        << " orders=" << orders_.size() << " dc_published=" << dcPublished_;
      return s.str();
    }
    return "error: unknown command: " + line;
  }

  std::string replay(const std::string& file) {
    std::ifstream in(file);
    if (!in) return "error: cannot read " + file;
    std::string line;
    int n = 0, published = 0;
    while (std::getline(in, line)) {
      ++n;
      std::vector<std::string> w = words(line);
      if (w.empty() || w[0][0] == '#') continue;
      if (w[0] == "replay") return "error: " + file + " line " + std::to_string(n) + ": replay in a replay";
      std::string r = command(line);
      if (r.compare(0, 2, "ok") != 0) return "error: " + file + " line " + std::to_string(n) + ": " + r;
      ++published;
    }
    return "ok replayed " + std::to_string(published);
  }

 private:
  Rules rules_;
  std::string dir_;
  std::mutex mu_;    // orders, books, journal
  std::mutex dcMu_;  // one drop-copy publisher at a time, in order
  std::map<std::string, Order> orders_;
  std::map<std::string, std::map<std::string, int64_t>> positions_, leaders_;
  struct LeaderOrder {
    int64_t cum = 0;
    __int128 notional = 0;  // sum of qty * px, in units of 1e-18
  };
  std::map<std::string, std::map<std::string, LeaderOrder>> leaderOrders_;
  std::map<std::string, int64_t> marketPx_;
  std::ofstream journal_;
  int ordersSeen_ = 0;
  long rejects_ = 0, fills_ = 0, duplicates_ = 0, possDupIgnored_ = 0, dcPublished_ = 0;
  std::unique_ptr<FIX::Message> lastDc_;
  static thread_local std::string t_dupOrigSendingTime;  // set only while `dup` sends

  static bool loggedOn(const FIX::SessionID& id) {
    FIX::Session* s = FIX::Session::lookupSession(id);
    return s && s->isLoggedOn();
  }

  void journal(const std::string& line) {
    journal_ << line << "\n";
    journal_.flush();
  }

  static std::string field(const FIX::FieldMap& m, int tag) {
    return m.isSetField(tag) ? m.getField(tag) : std::string();
  }

  void applyFill(Order& o, int64_t q, int64_t px) {
    o.cum += q;
    o.lastPx = px;
    o.status = o.cum >= o.qty ? '2' : '1';
    positions_[o.account][o.symbol] += o.side == '1' ? q : -q;
  }

  FIX::Message report(Order& o, const std::string& execType, const std::string& clOrdId) {
    FIX::Message r;
    setStr(r.getHeader(), FIX::FIELD::MsgType, "8");
    setStr(r, FIX::FIELD::OrderID, o.orderId);
    setStr(r, FIX::FIELD::ClOrdID, clOrdId);
    if (clOrdId != o.clOrdId) setStr(r, FIX::FIELD::OrigClOrdID, o.clOrdId);
    setStr(r, FIX::FIELD::ExecID, o.orderId + "-" + std::to_string(o.execs++));
    setStr(r, FIX::FIELD::ExecType, execType);
    setStr(r, FIX::FIELD::OrdStatus, std::string(1, o.status));
    if (!o.account.empty()) setStr(r, FIX::FIELD::Account, o.account);
    setStr(r, FIX::FIELD::Symbol, o.symbol);
    setStr(r, FIX::FIELD::Side, std::string(1, o.side));
    setStr(r, FIX::FIELD::OrderQty, formatDecimal(o.qty));
    setStr(r, FIX::FIELD::OrdType, o.ordType);
    if (o.ordType == "2") setStr(r, FIX::FIELD::Price, formatDecimal(o.price));
    if (!o.tif.empty()) setStr(r, FIX::FIELD::TimeInForce, o.tif);
    bool open = o.status == '0' || o.status == '1';
    setStr(r, FIX::FIELD::LeavesQty, formatDecimal(open ? o.qty - o.cum : 0));
    setStr(r, FIX::FIELD::CumQty, formatDecimal(o.cum));
    setStr(r, FIX::FIELD::AvgPx, formatDecimal(o.cum ? o.lastPx : 0));
    setStr(r, FIX::FIELD::TransactTime, utcTimestamp(nowNs()));
    return r;
  }

  void reject(Order& o, int reason, const std::string& text, std::vector<FIX::Message>& out) {
    o.status = '8';
    FIX::Message r = report(o, "8", o.clOrdId);
    setStr(r, FIX::FIELD::OrdRejReason, std::to_string(reason));
    setStr(r, FIX::FIELD::Text, text);
    out.push_back(r);
    ++rejects_;
  }

  void fill(Order& o, int64_t q, std::vector<FIX::Message>& out) {
    int64_t px = o.ordType == "2" ? o.price : marketPrice(o.symbol);
    applyFill(o, q, px);
    FIX::Message r = report(o, "F", o.clOrdId);
    setStr(r, FIX::FIELD::LastQty, formatDecimal(q));
    setStr(r, FIX::FIELD::LastPx, formatDecimal(px));
    out.push_back(r);
    journal("F " + o.clOrdId + " " + formatDecimal(q) + " " + formatDecimal(px) + " " +
            std::to_string(o.execs));
    ++fills_;
  }

  int64_t marketPrice(const std::string& symbol) const {
    auto i = marketPx_.find(symbol);
    return i != marketPx_.end() ? i->second : rules_.marketFillPrice;
  }

  void newOrder(const FIX::Message& m, std::vector<FIX::Message>& out) {
    std::string clOrdId = m.getField(FIX::FIELD::ClOrdID);
    if (orders_.count(clOrdId)) {
      if (field(m.getHeader(), FIX::FIELD::PossDupFlag) == "Y") {
        ++possDupIgnored_;
        journal("I " + clOrdId);
        return;
      }
      ++duplicates_;
      journal("D " + clOrdId);
      Order dup = orders_[clOrdId];
      dup.status = '8';
      FIX::Message r = report(dup, "8", clOrdId);
      setStr(r, FIX::FIELD::OrdRejReason, "6");
      setStr(r, FIX::FIELD::Text, "duplicate ClOrdID " + clOrdId);
      out.push_back(r);
      return;
    }
    Order o;
    o.clOrdId = clOrdId;
    o.orderId = "V" + std::to_string(++ordersSeen_);
    o.account = field(m, FIX::FIELD::Account);
    o.symbol = m.getField(FIX::FIELD::Symbol);
    o.side = m.getField(FIX::FIELD::Side)[0];
    o.ordType = m.getField(FIX::FIELD::OrdType);
    o.tif = field(m, FIX::FIELD::TimeInForce);
    std::string text;
    if (!parseDecimal(field(m, FIX::FIELD::OrderQty), o.qty, &o.qtyDecimals) || o.qty <= 0)
      text = "OrderQty missing or not a positive decimal";
    else if (o.ordType == "2" && (!parseDecimal(field(m, FIX::FIELD::Price), o.price) || o.price <= 0))
      text = "limit order without a positive Price";
    else if (o.ordType != "1" && o.ordType != "2")
      text = "OrdType " + o.ordType + " not supported (1 market, 2 limit)";
    else if (o.side != '1' && o.side != '2')
      text = "Side " + std::string(1, o.side) + " not supported (1 buy, 2 sell)";
    else if (words(o.clOrdId + " x").size() != 2 || words(o.account + " x").size() > 2 ||
             words(o.symbol + " x").size() != 2)
      text = "ClOrdID, Account and Symbol must be single words at this venue";
    journal("N " + o.clOrdId + " " + o.orderId + " " + (o.account.empty() ? "-" : o.account) +
            " " + o.symbol + " " + std::string(1, o.side) + " " + formatDecimal(o.qty) + " " +
            o.ordType + " " + (o.ordType == "2" ? formatDecimal(o.price) : "-") + " " +
            (o.tif.empty() ? "-" : o.tif) + " 0");
    Order& ord = orders_[clOrdId] = o;
    if (!text.empty() || ord.symbol == rules_.rejectSymbol || ord.account == rules_.rejectAccount) {
      int reason = !text.empty() ? 99 : ord.symbol == rules_.rejectSymbol ? 1 : 99;
      reject(ord, reason, text.empty() ? "rejected by the venue's test rule" : text, out);
      journal("S " + clOrdId + " 8 " + std::to_string(ord.execs));
      return;
    }
    out.push_back(report(ord, "0", clOrdId));
    journal("S " + clOrdId + " 0 " + std::to_string(ord.execs));
    bool ioc = ord.tif == "3";
    int64_t fillable = ord.symbol == rules_.restSymbol ? 0 : ord.qty;
    if (ioc && rules_.iocFillMax > 0 && fillable > rules_.iocFillMax) fillable = rules_.iocFillMax;
    if (fillable > 0) {
      // Parts in the order's own precision, so each is a whole number of its lots.
      int64_t step = 1;
      for (int d = ord.qtyDecimals; d < kScaleDigits; ++d) step *= 10;
      int64_t steps = fillable / step;
      if (ord.qty > rules_.partialFillAbove && steps >= 3) {
        fill(ord, steps / 3 * step, out);
        fill(ord, steps / 3 * step, out);
        fill(ord, fillable - 2 * (steps / 3) * step, out);
      } else {
        fill(ord, fillable, out);
      }
    }
    if (ioc && ord.cum < ord.qty) {
      ord.status = '4';
      out.push_back(report(ord, "4", clOrdId));
      journal("S " + clOrdId + " 4 " + std::to_string(ord.execs));
    }
  }

  void cancel(const FIX::Message& m, std::vector<FIX::Message>& out) {
    std::string clOrdId = m.getField(FIX::FIELD::ClOrdID);
    std::string orig = m.getField(FIX::FIELD::OrigClOrdID);
    auto i = orders_.find(orig);
    if (i != orders_.end() && (i->second.status == '0' || i->second.status == '1')) {
      i->second.status = '4';
      out.push_back(report(i->second, "4", clOrdId));
      journal("S " + orig + " 4 " + std::to_string(i->second.execs));
      return;
    }
    FIX::Message r;
    setStr(r.getHeader(), FIX::FIELD::MsgType, "9");
    setStr(r, FIX::FIELD::OrderID, i != orders_.end() ? i->second.orderId : "NONE");
    setStr(r, FIX::FIELD::ClOrdID, clOrdId);
    setStr(r, FIX::FIELD::OrigClOrdID, orig);
    setStr(r, FIX::FIELD::OrdStatus, i != orders_.end() ? std::string(1, i->second.status) : "8");
    setStr(r, FIX::FIELD::CxlRejResponseTo, "1");
    setStr(r, FIX::FIELD::CxlRejReason, i != orders_.end() ? "0" : "1");
    setStr(r, FIX::FIELD::Text, i != orders_.end() ? "too late to cancel" : "unknown order");
    out.push_back(r);
  }

  void status(const FIX::Message& m, std::vector<FIX::Message>& out) {
    std::string clOrdId = m.getField(FIX::FIELD::ClOrdID);
    auto i = orders_.find(clOrdId);
    if (i != orders_.end()) {
      out.push_back(report(i->second, "I", clOrdId));
      return;
    }
    Order unknown;
    unknown.clOrdId = clOrdId;
    unknown.orderId = "NONE";
    unknown.symbol = field(m, FIX::FIELD::Symbol);
    unknown.side = field(m, FIX::FIELD::Side).empty() ? '1' : field(m, FIX::FIELD::Side)[0];
    unknown.ordType = "2";
    unknown.status = '8';
    FIX::Message r = report(unknown, "I", clOrdId);
    r.removeField(FIX::FIELD::Price);
    r.removeField(FIX::FIELD::OrdType);
    r.removeField(FIX::FIELD::OrderQty);
    setStr(r, FIX::FIELD::ExecID, "NONE-" + clOrdId);
    setStr(r, FIX::FIELD::OrdRejReason, "5");
    setStr(r, FIX::FIELD::Text, "unknown order");
    out.push_back(r);
  }

  // ---- drop copy
  std::string publishWords(const std::vector<std::string>& w) {
    if (w.size() < 7 || w.size() == 8 || w.size() > 10)
      return "error: fill LEADER SYMBOL SIDE QTY PX EXEC_ID [ORDER_ID ORDER_QTY [TS_NS]]";
    DropCopy d;
    d.leader = w[1];
    d.symbol = w[2];
    d.execId = w[6];
    d.orderId = w.size() >= 9 ? w[7] : w[6];
    std::string orderQty = w.size() >= 9 ? w[8] : w[4];
    std::string ts = w.size() == 10 ? w[9] : "";
    return publish(d, w[3], w[4], w[5], orderQty, ts);
  }

  std::string publishJson(const std::string& line) {
    std::map<std::string, std::string> j;
    std::string err;
    if (!parseFlatJson(line, j, err)) return "error: " + err;
    for (const char* k : {"leader", "event_id", "symbol", "side", "qty", "price"})
      if (j[k].empty()) return std::string("error: missing ") + k;
    DropCopy d;
    d.leader = j["leader"];
    d.symbol = j["symbol"];
    d.execId = j["event_id"];
    d.orderId = j["order_id"].empty() ? j["event_id"] : j["order_id"];
    return publish(d, j["side"], j["qty"], j["price"],
                   j["order_qty"].empty() ? j["qty"] : j["order_qty"], j["ts"]);
  }

  std::string publish(DropCopy d, const std::string& side, const std::string& qty,
                      const std::string& px, const std::string& orderQty, const std::string& ts) {
    if (side != "buy" && side != "sell") return "error: side is buy or sell: " + side;
    d.side = side == "buy" ? '1' : '2';
    if (!parseDecimal(qty, d.qty) || d.qty <= 0) return "error: qty: " + qty;
    if (!parseDecimal(px, d.px) || d.px <= 0) return "error: price: " + px;
    if (!parseDecimal(orderQty, d.orderQty) || d.orderQty < d.qty) return "error: order qty: " + orderQty;
    int64_t tsNs = nowNs();
    if (!ts.empty()) {
      char* end = nullptr;
      tsNs = strtoll(ts.c_str(), &end, 10);
      if (*end || tsNs <= 0) return "error: ts (ns since the epoch): " + ts;
    }
    std::lock_guard<std::mutex> dl(dcMu_);
    FIX::Message r;
    {
      std::lock_guard<std::mutex> l(mu_);
      LeaderOrder& lo = leaderOrders_[d.leader][d.orderId];
      lo.cum += d.qty;
      lo.notional += (__int128)d.qty * d.px;
      const int64_t cum = lo.cum;
      setStr(r.getHeader(), FIX::FIELD::MsgType, "8");
      setStr(r, FIX::FIELD::OrderID, d.orderId);
      setStr(r, FIX::FIELD::ExecID, d.execId);
      setStr(r, FIX::FIELD::ExecType, "F");
      setStr(r, FIX::FIELD::OrdStatus, cum >= d.orderQty ? "2" : "1");
      setStr(r, FIX::FIELD::Account, d.leader);
      setStr(r, FIX::FIELD::Symbol, d.symbol);
      setStr(r, FIX::FIELD::Side, std::string(1, d.side));
      setStr(r, FIX::FIELD::OrderQty, formatDecimal(d.orderQty));
      setStr(r, FIX::FIELD::LastQty, formatDecimal(d.qty));
      setStr(r, FIX::FIELD::LastPx, formatDecimal(d.px));
      setStr(r, FIX::FIELD::CumQty, formatDecimal(cum));
      setStr(r, FIX::FIELD::LeavesQty, formatDecimal(cum >= d.orderQty ? 0 : d.orderQty - cum));
      setStr(r, FIX::FIELD::AvgPx, formatDecimal(int64_t(lo.notional / cum)));
      setStr(r, FIX::FIELD::TransactTime, utcTimestamp(tsNs));
      leaders_[d.leader][d.symbol] += d.side == '1' ? d.qty : -d.qty;
      marketPx_[d.symbol] = d.px;
      journal("L " + d.leader + " " + d.symbol + " " + std::string(1, d.side) + " " +
              formatDecimal(d.qty) + " " + d.orderId + " " + formatDecimal(d.px));
      ++dcPublished_;
    }
    // Stored by QuickFIX (and so resent on a ResendRequest) even while logged off.
    if (!FIX::Session::sendToTarget(r, dc)) return "error: drop-copy session not found";
    lastDc_.reset(new FIX::Message(r));
    return "ok " + d.execId + (loggedOn(dc) ? "" : " (stored: drop-copy session is down)");
  }

  std::string dup() {
    std::lock_guard<std::mutex> dl(dcMu_);
    if (!lastDc_) return "error: nothing published yet";
    FIX::Message r(*lastDc_);
    t_dupOrigSendingTime = r.getHeader().getField(FIX::FIELD::SendingTime);
    bool sent = FIX::Session::sendToTarget(r, dc);
    t_dupOrigSendingTime.clear();
    if (!sent) return "error: drop-copy session not found";
    return "ok dup " + r.getField(FIX::FIELD::ExecID);
  }

  std::string books() {
    std::lock_guard<std::mutex> l(mu_);
    auto table = [](const std::map<std::string, std::map<std::string, int64_t>>& t) {
      std::ostringstream s;
      s << "{";
      bool firstA = true;
      for (const auto& a : t) {
        s << (firstA ? "" : ",") << "\"" << jsonEscape(a.first) << "\":{";
        firstA = false;
        bool firstS = true;
        for (const auto& p : a.second) {
          s << (firstS ? "" : ",") << "\"" << jsonEscape(p.first) << "\":\"" << formatDecimal(p.second) << "\"";
          firstS = false;
        }
        s << "}";
      }
      s << "}";
      return s.str();
    };
    std::ostringstream s;
    s << "{\"positions\":" << table(positions_) << ",\"leaders\":" << table(leaders_)
      << ",\"orders\":" << orders_.size() << ",\"fills\":" << fills_ << ",\"rejects\":" << rejects_
      << ",\"duplicate_cl_ord_ids\":" << duplicates_ << ",\"possdup_ignored\":" << possDupIgnored_
      << ",\"dc_published\":" << dcPublished_ << "}";
    return s.str();
  }
};

thread_local std::string Venue::t_dupOrigSendingTime;

// ---------------------------------------------------------------- control port
std::atomic<bool> g_quit(false);

void serveClient(Venue& venue, int fd) {
  std::string buf;
  char chunk[4096];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    buf.append(chunk, size_t(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      std::string reply;
      if (line == "quit") {
        g_quit = true;
        reply = "ok quitting";
      } else {
        try {
          reply = venue.command(line);
        } catch (std::exception& e) {
          reply = std::string("error: ") + e.what();
        }
      }
      reply += "\n";
      if (write(fd, reply.data(), reply.size()) < 0) break;
    }
  }
  close(fd);
}

int listenControl(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (sockaddr*)&a, sizeof a) != 0 || listen(fd, 8) != 0)
    throw std::runtime_error("cannot listen on control port 127.0.0.1:" + std::to_string(port) +
                             ": " + strerror(errno));
  return fd;
}

std::string exeDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, size_t(n));
  return p.substr(0, p.rfind('/'));
}

int64_t ruleDecimal(const FIX::Dictionary& d, const char* key, int64_t dflt) {
  if (!d.has(key)) return dflt;
  int64_t v;
  if (!parseDecimal(d.getString(key), v) || v < 0)
    throw std::runtime_error(std::string(key) + " is not a non-negative decimal: " + d.getString(key));
  return v;
}

int usage(const char* why) {
  std::cerr << "fixvenue: " << why << "\n"
            << "usage: fixvenue --config FILE --dir DIR [--port N] [--dc-port M] [--control P]\n"
            << "                [--dictionary FIX44.xml] [--replay FILE]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return usage("the FIX 4.4 test venue (see README.md)"), 0;
    if (a.compare(0, 2, "--") != 0 || i + 1 >= argc) return usage(("bad argument: " + a).c_str());
    args[a.substr(2)] = argv[++i];
  }
  for (const auto& a : args)
    if (a.first != "config" && a.first != "dir" && a.first != "port" && a.first != "dc-port" &&
        a.first != "control" && a.first != "dictionary" && a.first != "replay")
      return usage(("unknown option --" + a.first).c_str());
  if (!args.count("config") || !args.count("dir")) return usage("--config and --dir are required");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  try {
    const std::string dir = args["dir"];
    mkdir(dir.c_str(), 0755);
    FIX::SessionSettings in(args["config"]);
    FIX::Dictionary defaults = in.get();
    std::string dictionary = args.count("dictionary") ? args["dictionary"]
                             : defaults.has("DataDictionary") ? defaults.getString("DataDictionary")
                                                              : exeDir() + "/spec/FIX44.xml";
    if (access(dictionary.c_str(), R_OK) != 0)
      throw std::runtime_error("FIX44 data dictionary not readable: " + dictionary +
                               " (scripts/install-quickfix.sh puts Debian's there)");
    defaults.setString("ConnectionType", "acceptor");
    defaults.setString("FileLogPath", dir + "/log");
    defaults.setString("FileStorePath", dir + "/store");
    defaults.setString("UseDataDictionary", "Y");
    defaults.setString("DataDictionary", dictionary);

    Rules rules;
    if (defaults.has("RejectSymbol")) rules.rejectSymbol = defaults.getString("RejectSymbol");
    if (defaults.has("RejectAccount")) rules.rejectAccount = defaults.getString("RejectAccount");
    if (defaults.has("RestSymbol")) rules.restSymbol = defaults.getString("RestSymbol");
    rules.partialFillAbove = ruleDecimal(defaults, "PartialFillAbove", rules.partialFillAbove);
    rules.iocFillMax = ruleDecimal(defaults, "IocFillMax", rules.iocFillMax);
    rules.marketFillPrice = ruleDecimal(defaults, "MarketFillPrice", rules.marketFillPrice);

    Venue venue(rules, dir);
    FIX::SessionSettings settings;
    settings.set(defaults);
    for (const FIX::SessionID& id : in.getSessions()) {
      FIX::Dictionary d = in.get(id);
      std::string role = d.has("VenueRole") ? d.getString("VenueRole") : "";
      for (const char* k : {"ConnectionType", "FileLogPath", "FileStorePath", "UseDataDictionary", "DataDictionary"})
        d.setString(k, defaults.getString(k));
      if (id.getBeginString() != "FIX.4.4")
        throw std::runtime_error("session " + id.toString() + ": only FIX.4.4 is supported");
      if (role == "order-entry") {
        venue.oe = id;
        if (args.count("port")) d.setString("SocketAcceptPort", args["port"]);
      } else if (role == "drop-copy") {
        venue.dc = id;
        if (args.count("dc-port")) d.setString("SocketAcceptPort", args["dc-port"]);
      } else {
        throw std::runtime_error("session " + id.toString() + ": VenueRole must be order-entry or drop-copy");
      }
      std::cout << "fixvenue: " << role << " session " << id.toString() << " on port "
                << d.getString("SocketAcceptPort") << std::endl;
      settings.set(id, d);
    }
    if (venue.oe.getSenderCompID().getValue().empty() || venue.dc.getSenderCompID().getValue().empty())
      throw std::runtime_error(args["config"] + ": needs one order-entry and one drop-copy session");
    venue.load();
    if (args.count("replay")) venue.replayOnLogon = args["replay"];

    FIX::FileStoreFactory store(settings);
    FIX::FileLogFactory log(settings);
    FIX::ThreadedSocketAcceptor acceptor(venue, store, settings, log);
    acceptor.start();
    // After the sessions' ports: a test that reaches the control port can log on.
    int controlFd = -1;
    if (args.count("control")) controlFd = listenControl(std::stoi(args["control"]));
    std::cout << "fixvenue: started, dictionary " << dictionary << ", state in " << dir
              << (controlFd >= 0 ? ", control on 127.0.0.1:" + args["control"] : "") << std::endl;

    if (controlFd >= 0) {
      std::thread([&venue, controlFd] {
        for (;;) {
          int c = accept(controlFd, nullptr, nullptr);
          if (c < 0) continue;
          std::thread(serveClient, std::ref(venue), c).detach();
        }
      }).detach();
    }
    while (!g_quit) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    acceptor.stop();
    std::cout << "fixvenue: stopped" << std::endl;
    _exit(0);  // detached control threads may still block in read()
  } catch (std::exception& e) {
    std::cerr << "fixvenue: " << e.what() << std::endl;
    return 1;
  }
}
