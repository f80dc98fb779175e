//! What the stack's processes cost: CPU time and resident memory per
//! component, from `/proc`, for the pids `scripts/up` recorded under
//! `.state/run/`. PostgreSQL is split by what its processes serve, read from
//! their titles: `postgres/<database>` for the backends of each database
//! (`postgres/views` is the MongoDB API server's storage),
//! `postgres/walsender` for Debezium's replication connections and
//! `postgres/background` for the postmaster and its helpers.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    /// User + system CPU time, ms.
    pub cpu_ms: f64,
    /// Resident set summed over the processes (shared pages counted in each).
    pub rss_mib: f64,
    /// Proportional set: shared pages split between the processes that map
    /// them, so PostgreSQL's shared buffers count once.
    pub pss_mib: f64,
    pub processes: usize,
}

/// Component name → its processes' usage, now.
pub fn snapshot(state: &Path) -> BTreeMap<String, Usage> {
    let ticks_per_second = clock_ticks();
    let all = processes();
    let mut usage = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(state.join("run")) else { return usage };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if path.extension().and_then(|e| e.to_str()) != Some("pid") {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(&path).ok().and_then(|t| t.lines().next()?.trim().parse::<u32>().ok()) else { continue };
        for p in all.iter().filter(|p| p.pid == pid || (name == "postgres" && p.ppid == pid)) {
            let component = if name == "postgres" { format!("postgres/{}", postgres_role(p.pid)) } else { name.clone() };
            let u: &mut Usage = usage.entry(component).or_default();
            u.cpu_ms += p.ticks as f64 * 1000.0 / ticks_per_second;
            u.rss_mib += p.rss_kib as f64 / 1024.0;
            u.pss_mib += pss_kib(p.pid) as f64 / 1024.0;
            u.processes += 1;
        }
    }
    usage
}

/// CPU ms each component used between two snapshots.
pub fn cpu_between(before: &BTreeMap<String, Usage>, after: &BTreeMap<String, Usage>) -> BTreeMap<String, f64> {
    after.iter().map(|(name, a)| (name.clone(), a.cpu_ms - before.get(name).map_or(0.0, |b| b.cpu_ms))).collect()
}

struct Process {
    pid: u32,
    ppid: u32,
    ticks: u64,
    rss_kib: u64,
}

fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name, which may itself hold spaces.
            let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ppid = rest.get(1)?.parse().ok()?;
            let ticks = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let rss_kib = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0);
            Some(Process { pid, ppid, ticks, rss_kib })
        })
        .collect()
}

/// `postgres: <user> <database> <client> ...` names a backend's database.
fn postgres_role(pid: u32) -> String {
    let title = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ");
    let words: Vec<&str> = title.split_whitespace().collect();
    match words.as_slice() {
        ["postgres:", "walsender", ..] => "walsender".into(),
        ["postgres:", _user, database, client, ..] if client.starts_with("127.") || client.starts_with("[local]") || client.starts_with("::1") => {
            database.to_string()
        }
        _ => "background".into(),
    }
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("Pss:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok()).unwrap_or(100.0)
}
