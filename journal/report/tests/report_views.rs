//! The leaderboard and the per-follower report, on small SQLite databases built
//! here (the sidecar's public schema, as in `report_metrics`) whose figures are
//! worked out by hand in the comments.

use std::str::FromStr;

use fillcast_report as report;
use fillcast_report::time::{days_from_civil, NS_PER_DAY};
use fillcast_report::{LeaderboardFilter, ReportError, ReportOptions};
use rusqlite::{params, Connection};
use rust_decimal::Decimal;

const SCHEMA: &str = include_str!("report_schema.sql");

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn day(n: i64) -> i64 {
    days_from_civil(2024, 11, 1) * NS_PER_DAY + n * NS_PER_DAY
}

/// The report's time: day 100. Windows: 7d from day 93, 30d from day 70, 90d from
/// day 10, all from day 1.
fn options() -> ReportOptions {
    ReportOptions {
        as_of_ns: Some(day(100)),
        ..ReportOptions::default()
    }
}

/// Six leaders, each buying 10 of its own symbol at 100 on day 1 (capital 1000),
/// so that equity = 1000 + 10 × (mark − 100):
///
/// | leader | marks (day → price)          | equity at 10, 70, 93, 100 | followers, AUM |
/// |--------|------------------------------|---------------------------|----------------|
/// | LA     | 50 → 120, 96 → 130           | 1000, 1200, 1200, 1300    | 3, 3000        |
/// | LB     | 50 → 150, 80 → 90, 96 → 95   | 1000, 1500, 900, 950      | 1, 500         |
/// | LC     | 50 → 120, 75 → 100, 90 → 130 | 1000, 1200, 1300, 1300    | 5, 10000       |
/// | LD     | as LA                        | as LA                     | 1, 200         |
/// | LE     | fills, no capital            |                           | 0              |
/// | LF     | capital, no fill             |                           | 0              |
///
/// 30 days: LA, LC and LD all make 1300/1200 − 1 = 8.33%; LA and LD with no
/// drawdown, LC with (1200 − 1000)/1200 = 16.67%; LB −36.67% with a drawdown of
/// (1500 − 900)/1500 = 40%.
fn leaders_db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(
        "INSERT INTO leaders VALUES ('LA', '1000'), ('LB', '1000'), ('LC', '1000'),
                                    ('LD', '1000'), ('LF', '1000');",
    )
    .unwrap();
    let marks: [(&str, &[(i64, &str)]); 5] = [
        ("LA", &[(1, "100"), (50, "120"), (96, "130")]),
        ("LB", &[(1, "100"), (50, "150"), (80, "90"), (96, "95")]),
        ("LC", &[(1, "100"), (50, "120"), (75, "100"), (90, "130")]),
        ("LD", &[(1, "100"), (50, "120"), (96, "130")]),
        ("LE", &[(1, "100"), (50, "120")]),
    ];
    for (seq, (leader, path)) in marks.iter().enumerate() {
        let symbol = format!("SYM-{leader}");
        c.execute(
            "INSERT INTO leader_fills VALUES (?1, ?2, ?3, ?4, 'buy', '10', '100', '10', ?3, '10', ?5, ?5, '')",
            params![seq as i64 + 1, leader, format!("e{seq}"), symbol, day(1)],
        )
        .unwrap();
        for (t, p) in path.iter() {
            c.execute(
                "INSERT INTO mark_prices VALUES (?1, ?2, ?3)",
                params![symbol, day(*t), p],
            )
            .unwrap();
        }
    }
    let subs: [(&str, usize, &str); 4] = [
        ("LA", 3, "1000"),
        ("LB", 1, "500"),
        ("LC", 5, "2000"),
        ("LD", 1, "200"),
    ];
    for (leader, n, allocation) in subs {
        for k in 0..n {
            c.execute(
                "INSERT INTO subscriptions VALUES (?1, ?2, ?3, 'proportional', ?4)",
                params![
                    format!("S-{leader}-{k}"),
                    format!("F-{leader}-{k}"),
                    leader,
                    allocation
                ],
            )
            .unwrap();
        }
    }
    c
}

fn ranked(filter: LeaderboardFilter) -> Vec<String> {
    let r = report::build_with(&leaders_db(), &options()).unwrap();
    let lb = r.leaderboard(&filter).unwrap();
    lb.rows.iter().map(|r| r.leader_id.clone()).collect()
}

fn period(p: &str) -> LeaderboardFilter {
    LeaderboardFilter {
        period: p.to_string(),
        ..LeaderboardFilter::default()
    }
}

#[test]
fn the_leaderboard_ranks_by_roi_and_breaks_ties_by_drawdown_followers_and_id() {
    let r = report::build_with(&leaders_db(), &options()).unwrap();
    let lb = r.leaderboard(&period("30d")).unwrap();
    let rows: Vec<(usize, &str, Decimal, Decimal, usize)> = lb
        .rows
        .iter()
        .map(|r| {
            (
                r.rank,
                r.leader_id.as_str(),
                r.roi.round_dp(6),
                r.max_drawdown.round_dp(6),
                r.followers,
            )
        })
        .collect();
    // Equal ROI: LA and LD (no drawdown) before LC (16.67%); LA (3 followers)
    // before LD (1).
    assert_eq!(
        rows,
        vec![
            (1, "LA", d("0.083333"), d("0"), 3),
            (2, "LD", d("0.083333"), d("0"), 1),
            (3, "LC", d("0.083333"), d("0.166667"), 5),
            (4, "LB", d("-0.366667"), d("0.4"), 1),
        ]
    );
    assert_eq!(lb.rows[0].aum, d("3000"));
    assert_eq!(lb.rows[2].aum, d("10000"));
    // Leaders with no ROI are not ranked, and say why.
    assert_eq!(
        lb.left_out,
        vec![
            (
                "LE".to_string(),
                "no capital: no ROI to rank by".to_string()
            ),
            ("LF".to_string(), "no fill: no ROI to rank by".to_string()),
        ]
    );
    // The chart: the window's equity from its opening to the report's time.
    let la = &lb.rows[0].curve;
    assert_eq!(la.first(), Some(&(day(70), d("1200"))));
    assert_eq!(la.last(), Some(&(day(100), d("1300"))));

    // 7 days: LB's recovery 900 → 950 (5.56%) beats LC, flat at 1300.
    assert_eq!(ranked(period("7d")), ["LA", "LD", "LB", "LC"]);
    // 90 days and all time: LA, LC and LD make 30%; LB −5%.
    assert_eq!(ranked(period("90d")), ["LA", "LD", "LC", "LB"]);
    assert_eq!(ranked(period("all")), ["LA", "LD", "LC", "LB"]);
}

#[test]
fn the_leaderboard_filters_include_and_exclude_the_right_leaders() {
    let f = |aum: Option<&str>, followers: Option<usize>, dd: Option<&str>| LeaderboardFilter {
        period: "30d".into(),
        aum_min: aum.map(d),
        followers_min: followers,
        drawdown_max: dd.map(d),
    };
    // AUM at least 1000: LA (3000) and LC (10000); not LD (200) or LB (500).
    assert_eq!(ranked(f(Some("1000"), None, None)), ["LA", "LC"]);
    // Bounds are inclusive: AUM 500 keeps LB.
    assert_eq!(ranked(f(Some("500"), None, None)), ["LA", "LC", "LB"]);
    assert_eq!(ranked(f(None, Some(3), None)), ["LA", "LC"]);
    assert_eq!(ranked(f(None, Some(1), None)), ["LA", "LD", "LC", "LB"]);
    // Drawdown at most 10%: LA, LD; at most exactly 40%: everyone ranked.
    assert_eq!(ranked(f(None, None, Some("0.1"))), ["LA", "LD"]);
    assert_eq!(ranked(f(None, None, Some("0.4"))), ["LA", "LD", "LC", "LB"]);
    // Together, and over another period: over 7 days nobody drew down.
    assert_eq!(ranked(f(Some("1000"), None, Some("0.1"))), ["LA"]);
    let mut week = f(None, None, Some("0"));
    week.period = "7d".into();
    assert_eq!(ranked(week), ["LA", "LD", "LB", "LC"]);

    let r = report::build_with(&leaders_db(), &options()).unwrap();
    let lb = r
        .leaderboard(&f(Some("1000"), Some(3), Some("0.1")))
        .unwrap();
    let why = |id: &str| lb.left_out.iter().find(|l| l.0 == id).unwrap().1.clone();
    assert_eq!(
        why("LB"),
        "AUM 500 below 1000; 1 follower(s), below 3; max drawdown 40.00% above 10.00%"
    );
    assert_eq!(why("LC"), "max drawdown 16.67% above 10.00%");
    // Renderings say what ranks and how ties break, and list who is out and why.
    let text = lb.to_text();
    assert!(text.contains(report::RANKED_BY), "{text}");
    assert!(
        text.contains("filters: AUM ≥ 1000.00, followers ≥ 3, max drawdown ≤ 10.00%"),
        "{text}"
    );
    assert!(text.contains("   1  LA "), "{text}");
    assert!(
        text.contains("  LC: max drawdown 16.67% above 10.00%"),
        "{text}"
    );
    let json = lb.to_json();
    assert_eq!(json["schema"], "fillcast.leaderboard.v1");
    assert_eq!(json["ranked_by"], report::RANKED_BY);
    assert_eq!(json["period"], "30d");
    assert_eq!(json["filters"]["aum_min"], "1000");
    assert_eq!(json["leaders"][0]["leader_id"], "LA");
    assert_eq!(json["leaders"][0]["rank"], 1);
    assert_eq!(json["leaders"].as_array().unwrap().len(), 1);
    assert_eq!(json["left_out"].as_array().unwrap().len(), 5);

    // A period that is not a window is an error naming the ones there are.
    let e = r.leaderboard(&period("14d")).unwrap_err().to_string();
    assert!(
        e.contains("\"14d\"") && e.contains("7d, 30d, 90d, all"),
        "{e}"
    );
}

#[test]
fn the_page_has_a_leaderboard_with_controls_and_a_chart_per_leader() {
    let html = report::build_with(&leaders_db(), &options())
        .unwrap()
        .to_html();
    assert!(html.contains("<section id=\"leaderboard\">"));
    for id in [
        "lb-period",
        "lb-aum-min",
        "lb-followers-min",
        "lb-dd-max",
        "lb-count",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    // One row per ranked leader and period, the 30-day ones shown first.
    assert_eq!(html.matches("<tr data-period=").count(), 4 * 4);
    assert_eq!(
        html.matches("<tr data-period=\"30d\" data-rank=").count(),
        4
    );
    assert_eq!(html.matches("<tr data-period=\"7d\"").count(), 4);
    assert!(html.contains("<tr data-period=\"30d\" data-rank=\"3\" data-roi=\"0.0833333333333333333333333333\" data-pnl=\"100\" data-dd=\"16.66666666666666666666666667\" data-followers=\"5\" data-aum=\"10000\" data-trades=\"1\"><td class=\"n\">3</td><td>LC</td>"), "{html}");
    assert!(!html.contains("<tr data-period=\"30d\" data-rank=\"1\" data-roi=\"0.0833333333333333333333333333\" data-pnl=\"100\" data-dd=\"0\" data-followers=\"3\" data-aum=\"3000\" data-trades=\"1\" hidden>"));
    assert!(html.contains("<tr data-period=\"7d\" data-rank=\"1\""));
    assert_eq!(html.matches("<svg class=\"spark\"").count(), 16);
    assert!(html.contains("Not ranked over 30d: LE (no capital: no ROI to rank by), LF (no fill: no ROI to rank by).</p>"));
    assert!(html.contains(&report::RANKED_BY.replace('&', "&amp;")));
    // The script is inline and asks nothing of the network.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("<script>\n"));
    for banned in [
        "src=",
        "http",
        "fetch(",
        "XMLHttpRequest",
        "WebSocket",
        "import(",
    ] {
        assert!(!html.contains(banned), "the page contains {banned:?}");
    }
}

const ME: &str = "FOLLOWER-KILO-7301";

/// One leader LX trading SYM; three followers with distinctive ids, subscriptions,
/// orders, trade ids, allocations, fees and equity:
///
/// - KILO (`ME`): SUB-KILO-1 (allocation 1000) buys 1 @ 100 on day 1 and sells 0.5
///   @ 110 on day 2, fee 0.0731 each: realized 5, unrealized 0.5 × (105 − 100) =
///   2.5, net 7.5 − 0.1462 = 7.3538.
/// - LIMA: SUB-LIMA-1 (4242.42, raised by 123.45 on day 2) buys 4 @ 100.5, fee
///   0.8412 (net 17.1588); SUB-LIMA-2 has a rejected order; reported equity 5555.55;
///   paused in the audit log.
/// - MIKE: SUB-MIKE-1 (777.77) buys 0.7 @ 99.5, fee 0.9523 (net 2.8977); reported
///   equity 888.88.
fn followers_db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(
        "INSERT INTO leaders VALUES ('LX', '10000');
         INSERT INTO followers VALUES ('FOLLOWER-KILO-7301', '1000'),
           ('FOLLOWER-LIMA-8412', '4242.42'), ('FOLLOWER-MIKE-9523', '777.77');
         INSERT INTO subscriptions VALUES
           ('SUB-KILO-1', 'FOLLOWER-KILO-7301', 'LX', 'proportional', '1000'),
           ('SUB-LIMA-1', 'FOLLOWER-LIMA-8412', 'LX', 'proportional', '4365.87'),
           ('SUB-LIMA-2', 'FOLLOWER-LIMA-8412', 'LX', 'fixed', '31.31'),
           ('SUB-MIKE-1', 'FOLLOWER-MIKE-9523', 'LX', 'proportional', '777.77');",
    )
    .unwrap();
    c.execute_batch(&format!(
        "INSERT INTO leader_fills VALUES
           (1, 'LX', 'e1', 'SYM', 'buy', '10', '100', '10', 'o1', '10', {d1}, {d1}, ''),
           (2, 'LX', 'e2', 'SYM', 'sell', '5', '110', '5', 'o2', '5', {d2}, {d2}, '');
         INSERT INTO mark_prices VALUES ('SYM', {d3}, '105');
         INSERT INTO allocation_changes VALUES
           (9, 'SUB-LIMA-1', 'FOLLOWER-LIMA-8412', 'LX', {d2}, '4242.42', '4365.87', '2');
         INSERT INTO follower_equity VALUES (10, 'FOLLOWER-LIMA-8412', {d2}, '5555.55'),
           (11, 'FOLLOWER-MIKE-9523', {d2}, '888.88');
         INSERT INTO audit_log VALUES (12, {d2}, 'command', 'FOLLOWER-LIMA-8412', 'pause', 'paused SUB-LIMA-2');",
        d1 = day(1),
        d2 = day(2),
        d3 = day(3),
    ))
    .unwrap();
    // (instruction seq, leader fill, subscription, follower, target, sent, order id,
    //  order status, trade id, side, qty, price, fee, day)
    #[allow(clippy::type_complexity)]
    let rows: [(
        i64,
        i64,
        &str,
        &str,
        &str,
        &str,
        &str,
        &str,
        Option<&str>,
        &str,
        &str,
        &str,
        &str,
        i64,
    ); 5] = [
        (
            1,
            1,
            "SUB-KILO-1",
            ME,
            "1",
            "1",
            "COID-KILO-1",
            "filled",
            Some("TRADE-KILO-1"),
            "buy",
            "1",
            "100",
            "0.0731",
            1,
        ),
        (
            2,
            2,
            "SUB-KILO-1",
            ME,
            "0.5",
            "-0.5",
            "COID-KILO-2",
            "filled",
            Some("TRADE-KILO-2"),
            "sell",
            "0.5",
            "110",
            "0.0731",
            2,
        ),
        (
            3,
            1,
            "SUB-LIMA-1",
            "FOLLOWER-LIMA-8412",
            "4",
            "4",
            "COID-LIMA-1",
            "filled",
            Some("TRADE-LIMA-1"),
            "buy",
            "4",
            "100.5",
            "0.8412",
            1,
        ),
        (
            4,
            1,
            "SUB-LIMA-2",
            "FOLLOWER-LIMA-8412",
            "0.03",
            "0.03",
            "COID-LIMA-2",
            "rejected",
            None,
            "buy",
            "0.03",
            "100",
            "0",
            1,
        ),
        (
            5,
            1,
            "SUB-MIKE-1",
            "FOLLOWER-MIKE-9523",
            "0.7",
            "0.7",
            "COID-MIKE-1",
            "filled",
            Some("TRADE-MIKE-1"),
            "buy",
            "0.7",
            "99.5",
            "0.9523",
            1,
        ),
    ];
    for (iseq, lseq, sub, f, target, sent, coid, status, trade, side, qty, price, fee, t) in rows {
        c.execute(
            "INSERT INTO copy_instructions VALUES (?1, ?2, ?3, ?4, ?5, 'LX', 'SYM', ?6, ?7, ?7, 'sent', '', 1, '')",
            params![iseq, lseq, format!("e{lseq}"), sub, f, target, sent],
        )
        .unwrap();
        let filled = if trade.is_some() { qty } else { "0" };
        c.execute(
            "INSERT INTO follower_orders VALUES (?1, ?2, ?2, ?3, ?4, ?5, 'LX', 'sim', 'SYM', ?6, ?7, ?8, 'ioc', 0, ?9, ?10, ?11)",
            params![
                coid, iseq, format!("e{lseq}"), sub, f, side, qty, price, status, filled,
                trade.is_none().then_some("insufficient_margin")
            ],
        )
        .unwrap();
        if let Some(trade) = trade {
            c.execute(
                "INSERT INTO follower_fills VALUES (?1, ?2, ?3, ?4, ?5, 'SYM', ?6, ?7, ?8, ?9, ?10)",
                params![coid, trade, iseq, f, sub, side, qty, price, fee, day(t) + 1_000],
            )
            .unwrap();
        }
    }
    c
}

#[test]
fn a_follower_report_holds_its_own_data_and_nothing_of_any_other_follower() {
    let c = followers_db();
    let opts = ReportOptions::default();
    // The operator's report, for the other followers' own figures.
    let all = report::build_with(&c, &opts).unwrap();
    let lima = all.follower("FOLLOWER-LIMA-8412").unwrap();
    let mike = all.follower("FOLLOWER-MIKE-9523").unwrap();
    assert_eq!(lima.net_pnl, d("17.1588"));
    assert_eq!(mike.net_pnl, d("2.8977"));

    let v = report::build_follower(&c, &opts, ME).unwrap();
    let f = &v.follower;
    assert_eq!(f.follower_id, ME);
    assert_eq!(
        (f.realized_pnl, f.unrealized_pnl, f.fees_paid, f.net_pnl),
        (d("5"), d("2.5"), d("0.1462"), d("7.3538"))
    );
    assert_eq!(f.subscriptions.len(), 1);
    assert_eq!(v.sync.len(), 1);
    assert_eq!((v.activity.orders, v.activity.fills), (2, 2));
    assert_eq!(v.activity.filled_notional, d("155"));

    let text = v.to_text();
    let json = serde_json::to_string(&v.to_json()).unwrap();
    let html = v.to_html();
    assert!(v.to_json()["schema"] == "fillcast.follower.v1");
    for (format, out) in [("text", &text), ("json", &json), ("html", &html)] {
        for mine in [ME, "SUB-KILO-1", "COID-KILO-1", "COID-KILO-2", "7.35"] {
            assert!(out.contains(mine), "{format}: {mine:?} missing:\n{out}");
        }
        for theirs in [
            "LIMA",
            "MIKE",
            "8412",
            "9523",
            "4242.42",
            "4365.87",
            "31.31",
            "123.45",
            "5555.55",
            "888.88",
            "777.77",
            "100.5",
            "99.5",
            "17.1588",
            "17.16",
            "2.8977",
            "insufficient_margin",
            "paused",
        ] {
            assert!(
                !out.contains(theirs),
                "{format}: another follower's {theirs:?} leaks:\n{out}"
            );
        }
    }
    assert!(!html.contains("<script"));
    assert!(html.contains("<table id=\"follower-orders\">"));
}

#[test]
fn an_unknown_follower_is_an_error_naming_it() {
    let c = followers_db();
    let e = report::build_follower(&c, &ReportOptions::default(), "FOLLOWER-NOPE-1").unwrap_err();
    assert!(matches!(e, ReportError::UnknownFollower(ref id) if id == "FOLLOWER-NOPE-1"));
    let msg = e.to_string();
    assert!(
        msg.contains("\"FOLLOWER-NOPE-1\" is not in the database"),
        "{msg}"
    );
}

/// The leader ids of the rows headless Chromium shows in the leaderboard after
/// the page's script applied `hash`, in their order on screen.
fn shown_in_chromium(html: &str, hash: &str) -> Option<Vec<String>> {
    if !std::path::Path::new(super::report_html::CHROMIUM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium not installed and CI is set: run scripts/install-chromium.sh"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    let dom =
        super::report_html::chromium(&["--dump-dom", &format!("file://{}{hash}", page.display())]);
    assert!(
        dom.contains("<table id=\"leaderboard-table\" data-live="),
        "the script did not run"
    );
    Some(
        dom.split("<tr data-period=")
            .skip(1)
            .filter(|row| !row[..row.find('>').unwrap()].contains("hidden"))
            .map(|row| {
                let cells: Vec<&str> = row.split("<td").collect();
                cells[2]
                    .trim_start_matches('>')
                    .split('<')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect(),
    )
}

#[test]
fn headless_chromium_filters_and_sorts_the_leaderboard() {
    let html = report::build_with(&leaders_db(), &options())
        .unwrap()
        .to_html();
    let Some(all) = shown_in_chromium(&html, "") else {
        println!("skipped: chromium not installed (scripts/install-chromium.sh)");
        return;
    };
    assert_eq!(all, ["LA", "LD", "LC", "LB"]);
    // The same filters as the library's, applied by the page's script.
    let some = shown_in_chromium(&html, "#leaderboard?period=30d&aum=1000&dd=10").unwrap();
    assert_eq!(some, ["LA"]);
    let week = shown_in_chromium(&html, "#leaderboard?period=7d&followers=1").unwrap();
    assert_eq!(week, ["LA", "LD", "LB", "LC"]);
    let dd = shown_in_chromium(&html, "#leaderboard?period=30d&dd=40").unwrap();
    assert_eq!(dd, ["LA", "LD", "LC", "LB"]);
}
