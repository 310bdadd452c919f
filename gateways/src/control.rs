//! Operator requests as `fillcast ctl` sends them: one line of words, resolved
//! against the decision model in force. The control socket (the `fillcast`
//! binary's `control` module) reads the line and answers; this is the part that
//! reads outside input, so it is total: any bytes give a request or a clear error.

use fillcast_engine::event::Command;
use fillcast_engine::model::{FollowerIdx, LeaderIdx, SubIdx, Universe};

/// The longest request line taken, bytes.
pub const MAX_REQUEST: usize = 4096;

/// What the commands are, for error messages and help.
pub const USAGE: &str = "commands: status | pause|resume|stop subscription|follower|leader ID | flatten subscription|follower ID | resync subscription ID | kill-switch on|off | reload | shutdown";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    Reload,
    Shutdown,
    /// An input event for the core.
    Command(Command),
}

#[derive(Copy, Clone)]
enum Target {
    Sub(u32),
    Follower(u32),
    Leader(u32),
}

/// The request on `line` (one line, without or with its newline), its names
/// resolved in `u`; `Err` says what is wrong in words a person can act on.
pub fn parse(line: &str, u: &Universe) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!("request longer than {MAX_REQUEST} bytes"));
    }
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.contains(['\n', '\r', '\0']) {
        return Err("a request is one line of words, without control characters".into());
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let target = |what: &str, id: &str| -> Result<Target, String> {
        match what {
            "subscription" | "sub" => u
                .subs
                .iter()
                .position(|s| s.id == id)
                .map(|i| Target::Sub(i as u32))
                .ok_or_else(|| format!("no subscription `{}` in the running revision", shown(id))),
            "follower" => u
                .follower(id)
                .map(|f| Target::Follower(f.0))
                .ok_or_else(|| format!("no follower `{}` in the running revision", shown(id))),
            "leader" => u
                .leader(id)
                .map(|l| Target::Leader(l.0))
                .ok_or_else(|| format!("no leader `{}` in the running revision", shown(id))),
            other => Err(format!(
                "`{}` is not a subscription, follower or leader (say `subscription ID`, `follower ID` or `leader ID`)",
                shown(other)
            )),
        }
    };
    let cmd = match words.as_slice() {
        [] => return Err(format!("empty request; {USAGE}")),
        ["status"] => return Ok(Request::Status),
        ["reload"] => return Ok(Request::Reload),
        ["shutdown"] => return Ok(Request::Shutdown),
        ["kill-switch", "on"] => Command::KillSwitch,
        ["kill-switch", "off"] => Command::KillSwitchOff,
        [verb @ ("pause" | "resume" | "stop" | "flatten" | "resync"), what, id] => {
            match (*verb, target(what, id)?) {
                ("pause", Target::Sub(s)) => Command::PauseSubscription(SubIdx(s)),
                ("resume", Target::Sub(s)) => Command::ResumeSubscription(SubIdx(s)),
                ("stop", Target::Sub(s)) => Command::StopSubscription(SubIdx(s)),
                ("flatten", Target::Sub(s)) => Command::Flatten(SubIdx(s)),
                ("resync", Target::Sub(s)) => Command::Resync(SubIdx(s)),
                ("pause", Target::Follower(f)) => Command::PauseFollower(FollowerIdx(f)),
                ("resume", Target::Follower(f)) => Command::ResumeFollower(FollowerIdx(f)),
                ("stop", Target::Follower(f)) => Command::StopFollower(FollowerIdx(f)),
                ("flatten", Target::Follower(f)) => Command::FlattenFollower(FollowerIdx(f)),
                ("pause", Target::Leader(l)) => Command::PauseLeader(LeaderIdx(l)),
                ("resume", Target::Leader(l)) => Command::ResumeLeader(LeaderIdx(l)),
                ("stop", Target::Leader(l)) => Command::StopLeader(LeaderIdx(l)),
                (verb, _) => {
                    return Err(format!(
                        "`{verb} {what}` is not a command (`{verb}` takes {})",
                        if verb == "flatten" {
                            "a subscription or a follower"
                        } else {
                            "a subscription"
                        }
                    ))
                }
            }
        }
        _ => return Err(format!("unknown command `{}`; {USAGE}", shown(line.trim()))),
    };
    Ok(Request::Command(cmd))
}

/// Outside text quoted in a message or a log line: at most `max` characters,
/// control characters escaped, so that a hostile request cannot forge log lines.
pub fn shown_at_most(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// `shown_at_most` 80 characters: a name or a request in an error message.
pub fn shown(s: &str) -> String {
    shown_at_most(s, 80)
}

/// What `cmd` does, with its names, for the answer and the log.
pub fn describe(cmd: &Command, u: &Universe) -> String {
    let sub = |i: u32| {
        u.subs
            .get(i as usize)
            .map_or("?".to_string(), |s| format!("subscription {}", s.id))
    };
    let follower = |i: u32| {
        u.followers
            .get(i as usize)
            .map_or("?".to_string(), |f| format!("follower {}", f.id))
    };
    let leader = |i: u32| {
        u.leaders
            .get(i as usize)
            .map_or("?".to_string(), |l| format!("leader {}", l.id))
    };
    match *cmd {
        Command::PauseSubscription(s) => format!("pause {}", sub(s.0)),
        Command::ResumeSubscription(s) => format!(
            "resume {} (a stopped subscription stays stopped; copies from the leader's next fill)",
            sub(s.0)
        ),
        Command::StopSubscription(s) => format!("stop {} (its positions are closed)", sub(s.0)),
        Command::Flatten(s) => format!("flatten {} (closed now, paused until resumed)", sub(s.0)),
        Command::Resync(s) => format!("resync {}", sub(s.0)),
        Command::PauseFollower(f) => format!("pause {}", follower(f.0)),
        Command::ResumeFollower(f) => format!(
            "resume {} and its paused subscriptions (stopped ones stay stopped)",
            follower(f.0)
        ),
        Command::StopFollower(f) => format!(
            "stop {} (every subscription; positions closed)",
            follower(f.0)
        ),
        Command::FlattenFollower(f) => format!("flatten {} (every subscription)", follower(f.0)),
        Command::PauseLeader(l) => format!("pause {}", leader(l.0)),
        Command::ResumeLeader(l) => format!("resume {}", leader(l.0)),
        Command::StopLeader(l) => format!(
            "stop {} (every subscription to it; positions closed)",
            leader(l.0)
        ),
        Command::KillSwitch => {
            "kill switch on: no new exposure anywhere; closes still go out".into()
        }
        Command::KillSwitchOff => "kill switch off".into(),
        Command::Reload => "reload".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fillcast_engine::config::load_str;
    use std::path::Path;

    fn u() -> Universe {
        let cfg = load_str(
            "[[venues]]\nname = \"sim\"\nkind = \"sim\"\n[[symbols]]\nname = \"X\"\nlot_size = \"1\"\ntick_size = \"1\"\nvenue = \"sim\"\n\
             [[leaders]]\nid = \"L1\"\nequity = \"1000\"\n[[followers]]\nid = \"F1\"\nequity = \"1000\"\n\
             [[subscriptions]]\nfollower = \"F1\"\nleader = \"L1\"\nallocation = \"100\"\nmode = \"proportional\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        Universe::from_config(&cfg).unwrap()
    }

    #[test]
    fn every_command_parses_to_its_event() {
        let u = u();
        for (line, want) in [
            ("status\n", Request::Status),
            ("reload", Request::Reload),
            ("shutdown\r\n", Request::Shutdown),
            ("kill-switch on", Request::Command(Command::KillSwitch)),
            ("kill-switch off", Request::Command(Command::KillSwitchOff)),
            (
                "pause subscription F1:L1",
                Request::Command(Command::PauseSubscription(SubIdx(0))),
            ),
            (
                "  resume   sub F1:L1 ",
                Request::Command(Command::ResumeSubscription(SubIdx(0))),
            ),
            (
                "stop subscription F1:L1",
                Request::Command(Command::StopSubscription(SubIdx(0))),
            ),
            (
                "flatten subscription F1:L1",
                Request::Command(Command::Flatten(SubIdx(0))),
            ),
            (
                "resync subscription F1:L1",
                Request::Command(Command::Resync(SubIdx(0))),
            ),
            (
                "pause follower F1",
                Request::Command(Command::PauseFollower(FollowerIdx(0))),
            ),
            (
                "resume follower F1",
                Request::Command(Command::ResumeFollower(FollowerIdx(0))),
            ),
            (
                "stop follower F1",
                Request::Command(Command::StopFollower(FollowerIdx(0))),
            ),
            (
                "flatten follower F1",
                Request::Command(Command::FlattenFollower(FollowerIdx(0))),
            ),
            (
                "pause leader L1",
                Request::Command(Command::PauseLeader(LeaderIdx(0))),
            ),
            (
                "resume leader L1",
                Request::Command(Command::ResumeLeader(LeaderIdx(0))),
            ),
            (
                "stop leader L1",
                Request::Command(Command::StopLeader(LeaderIdx(0))),
            ),
        ] {
            assert_eq!(parse(line, &u), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let u = u();
        let long = "x".repeat(MAX_REQUEST + 1);
        for (line, says) in [
            ("", "empty request"),
            ("   \n", "empty request"),
            ("pause", "unknown command"),
            ("pause subscription", "unknown command"),
            ("pause planet X", "`planet` is not a subscription"),
            ("pause subscription NOPE", "no subscription `NOPE`"),
            ("resume follower F9", "no follower `F9`"),
            ("stop leader L9", "no leader `L9`"),
            ("flatten leader L1", "`flatten leader` is not a command"),
            ("resync follower F1", "`resync follower` is not a command"),
            ("kill-switch maybe", "unknown command"),
            ("reload now", "unknown command"),
            ("STATUS", "unknown command"),
            ("status\nreload", "one line"),
            ("pause sub\0 F1:L1", "one line"),
            (long.as_str(), "longer than 4096 bytes"),
        ] {
            let e = parse(line, &u).expect_err(line);
            assert!(e.contains(says), "{line:?}: {e}");
        }
    }

    #[test]
    fn hostile_text_is_escaped_and_cut_in_messages() {
        let u = u();
        let e = parse("pause subscription \u{1b}[31mred\u{7}", &u).unwrap_err();
        assert!(!e.contains('\u{1b}') && !e.contains('\u{7}'), "{e:?}");
        let e = parse(&format!("nope {}", "y".repeat(500)), &u).unwrap_err();
        assert!(e.len() < 400, "{}", e.len());
    }
}
