//! What the stack's processes cost: CPU time and resident memory per
//! component, from `/proc`, for the pids `scripts/up` recorded under
//! `.state/run/`. PostgreSQL is split by what its processes serve, read from
//! their titles: `postgres/<database>` for the backends of each database
//! (`postgres/views` is the MongoDB API server's storage),
//! `postgres/walsender` for Debezium's replication connections and
//! `postgres/background` for the postmaster and its helpers.

use std::{collections::BTreeMap, path::Path};

use procfs::process::Process;
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
    let ticks_per_second = procfs::ticks_per_second() as f64;
    let all = processes();
    let mut usage = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(state.join("run")) else { return usage };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if path.extension().and_then(|e| e.to_str()) != Some("pid") {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(&path).ok().and_then(|t| t.lines().next()?.trim().parse::<i32>().ok()) else { continue };
        for p in all.iter().filter(|p| p.pid == pid || (name == "postgres" && p.ppid == pid)) {
            // Opened again by pid: holding every process open would hold a
            // descriptor for each process on the machine.
            let process = Process::new(p.pid).ok();
            let component = if name == "postgres" { format!("postgres/{}", postgres_role(process.as_ref())) } else { name.clone() };
            let u: &mut Usage = usage.entry(component).or_default();
            u.cpu_ms += p.ticks as f64 * 1000.0 / ticks_per_second;
            u.rss_mib += p.rss_kib as f64 / 1024.0;
            u.pss_mib += process.as_ref().map_or(0, pss_bytes) as f64 / (1024.0 * 1024.0);
            u.processes += 1;
        }
    }
    usage
}

/// CPU ms each component used between two snapshots.
pub fn cpu_between(before: &BTreeMap<String, Usage>, after: &BTreeMap<String, Usage>) -> BTreeMap<String, f64> {
    after.iter().map(|(name, a)| (name.clone(), a.cpu_ms - before.get(name).map_or(0.0, |b| b.cpu_ms))).collect()
}

struct Running {
    pid: i32,
    ppid: i32,
    /// User + system CPU time, in clock ticks.
    ticks: u64,
    rss_kib: u64,
}

/// Every process whose stat and status could be read; one that exits
/// meanwhile is left out.
fn processes() -> Vec<Running> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter_map(|process| {
            let stat = process.stat().ok()?;
            let status = process.status().ok()?;
            Some(Running { pid: process.pid(), ppid: stat.ppid, ticks: stat.utime + stat.stime, rss_kib: status.vmrss.unwrap_or(0) })
        })
        .collect()
}

/// `postgres: <user> <database> <client> ...` names a backend's database.
fn postgres_role(process: Option<&Process>) -> String {
    // Read as one line, whatever NULs the title's padding leaves in it.
    let title = process.and_then(|p| p.cmdline().ok()).unwrap_or_default().join(" ");
    let words: Vec<&str> = title.split_whitespace().collect();
    match words.as_slice() {
        ["postgres:", "walsender", ..] => "walsender".into(),
        ["postgres:", _user, database, client, ..] if client.starts_with("127.") || client.starts_with("[local]") || client.starts_with("::1") => {
            database.to_string()
        }
        _ => "background".into(),
    }
}

fn pss_bytes(process: &Process) -> u64 {
    process.smaps_rollup().ok().and_then(|r| r.memory_map_rollup.0.first()?.extension.map.get("Pss").copied()).unwrap_or(0)
}

/// CPU ms so far of what the SQL ceiling runs on: every PostgreSQL process
/// and this process (the consumers' step functions run in it).
pub fn ceiling_cpu_ms(state: &Path) -> f64 {
    let postgres: f64 = snapshot(state).iter().filter(|(name, _)| name.starts_with("postgres/")).map(|(_, u)| u.cpu_ms).sum();
    let own = Process::myself().and_then(|p| p.stat()).map_or(0, |s| s.utime + s.stime);
    postgres + own as f64 * 1000.0 / procfs::ticks_per_second() as f64
}
