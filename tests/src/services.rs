//! The stack's own processes, as the scripts record them: stop one, start it
//! again the way `scripts/up` does, or freeze it (SIGSTOP) for a moment to
//! hold back the consumer that would otherwise win a race.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{ensure, Context, Result};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

pub fn state() -> PathBuf {
    std::env::var_os("OUTFLOW_STATE").map(PathBuf::from).unwrap_or_else(|| repo().join(".state"))
}

/// A bash command run with the scripts' environment and functions (`lib.sh`,
/// `infra.sh`, `services.sh`), from the repository root.
pub fn scripts(command: &str) -> Command {
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(format!(". scripts/lib.sh && . scripts/infra.sh && . scripts/services.sh && {command}")).current_dir(repo()).stdin(Stdio::null());
    bash
}

fn proc_stat(pid: u32) -> Option<procfs::process::Stat> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()
}

/// Whether the process runs. A SIGKILLed JVM's main thread is a zombie while
/// its other threads still exit and hold its ports: it runs until the last
/// one is gone; an unreaped zombie after that does not.
pub fn running(pid: u32) -> bool {
    let Some(process) = i32::try_from(pid).ok().and_then(|pid| procfs::process::Process::new(pid).ok()) else { return false };
    match process.stat() {
        Ok(stat) if stat.state != 'Z' => true,
        Ok(_) => process.tasks().is_ok_and(|tasks| tasks.count() > 1),
        Err(_) => false,
    }
}

/// The pid the scripts recorded for the component `name`, if that very process
/// runs: its start time (in clock ticks since boot, as `proc_started` in
/// `scripts/lib.sh` writes it) tells it from a later process given the same pid.
pub fn recorded(name: &str) -> Result<u32> {
    let file = state().join("run").join(format!("{name}.pid"));
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}: is the stack up (scripts/up)?", file.display()))?;
    let mut lines = text.lines();
    let pid: u32 = lines.next().unwrap_or_default().trim().parse().with_context(|| format!("no pid in {}", file.display()))?;
    let recorded = lines.next().unwrap_or_default().trim().to_owned();
    let started = proc_stat(pid).map(|stat| stat.starttime.to_string());
    ensure!(started.as_deref() == Some(recorded.as_str()) && running(pid), "{name} (pid {pid} in {}) is not running", file.display());
    Ok(pid)
}

fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status()?;
    ensure!(status.success(), "kill {signal} {pid} failed: {status}");
    Ok(())
}

/// SIGTERM to the running component, then waits until it has exited.
pub async fn stop(name: &str) -> Result<()> {
    let pid = recorded(name).context("start the stack with scripts/up")?;
    signal(pid, "-TERM")?;
    let until = tokio::time::Instant::now() + Duration::from_secs(40);
    while running(pid) {
        ensure!(tokio::time::Instant::now() < until, "{name} (pid {pid}) did not stop within 40 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Starts the real component as `scripts/up` does (`start_service`, which
/// waits for its health) and checks that the recorded process answers.
pub async fn start(name: &str, port: u16) -> Result<()> {
    let started = scripts(&format!("start_service {name}")).output().context("running start_service")?;
    let output = format!("{}{}", String::from_utf8_lossy(&started.stdout), String::from_utf8_lossy(&started.stderr));
    let pid = recorded(name).with_context(|| format!("start_service {name} ({}): {output}", started.status))?;
    let healthy = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    ensure!(
        started.status.success() && healthy,
        "after start_service {name} ({}), pid {pid} is not healthy; run scripts/up. Its output:\n{output}",
        started.status
    );
    Ok(())
}

/// A component frozen by SIGSTOP until this is dropped (SIGCONT), so that a
/// test decides which of two consumers handles an order's events first. Kept
/// short (under the consumers' 10 s session timeout), the frozen consumer
/// keeps its partitions and simply resumes.
pub struct Frozen {
    pid: u32,
}

impl Frozen {
    pub fn freeze(name: &str) -> Result<Self> {
        let pid = recorded(name)?;
        signal(pid, "-STOP")?;
        Ok(Frozen { pid })
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = signal(self.pid, "-CONT");
    }
}

/// A second instance of a consumer, run beside the one `scripts/up` started
/// (same group, same environment, its own port for health and metrics), its
/// output in a log file; stopped with SIGTERM, killed on drop if still running.
pub struct Instance {
    pub name: String,
    pub port: u16,
    child: std::process::Child,
    pub log: PathBuf,
}

impl Instance {
    pub fn spawn(name: &str, port: u16) -> Result<Self> {
        Self::spawn_with(name, port, "")
    }

    /// [`Instance::spawn`] with more environment (`NAME=value ...`).
    pub fn spawn_with(name: &str, port: u16, environment: &str) -> Result<Self> {
        Self::spawn_from("", name, port, environment)
    }

    /// [`Instance::spawn_with`], from the build with the crash tests'
    /// failpoint, which `scripts/test` puts in target/failpoints (release
    /// builds leave the failpoint out).
    pub fn spawn_armed(name: &str, port: u16, environment: &str) -> Result<Self> {
        let binaries = repo().join("target/failpoints");
        anyhow::ensure!(binaries.is_dir(), "{} is missing: scripts/test builds the consumers with their failpoint there", binaries.display());
        Self::spawn_from(&format!("RELEASE={};", binaries.display()), name, port, environment)
    }

    fn spawn_from(prelude: &str, name: &str, port: u16, environment: &str) -> Result<Self> {
        let log = std::env::temp_dir().join(format!("outflow-{name}-{port}-{}.log", uuid::Uuid::new_v4().simple()));
        let out = std::fs::File::create(&log)?;
        // As start_service starts it (its own logins only), with `exec` so that
        // the child is the consumer itself.
        let child =
            scripts(&format!(r#"{prelude} mapfile -d '' command < <(service_command {name}); {environment} OUTFLOW_HTTP__PORT={port} exec "${{command[@]}}""#))
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("starting a second {name}"))?;
        Ok(Instance { name: name.to_owned(), port, child, log })
    }

    /// Waits until the instance answers on its health port.
    pub async fn wait_healthy(&mut self) -> Result<()> {
        let http = reqwest::Client::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the second {} exited during start ({status}); its log:\n{}", self.name, self.tail());
            }
            if http.get(format!("http://127.0.0.1:{}/healthz", self.port)).timeout(Duration::from_secs(2)).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            ensure!(tokio::time::Instant::now() < until, "the second {} is not healthy after 30 s; its log:\n{}", self.name, self.tail());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then waits for the exit (in-flight events finish first).
    pub async fn stop(self) -> Result<std::process::ExitStatus> {
        Ok(self.stop_with_output().await?.0)
    }

    /// [`Instance::stop`], and everything the instance printed (its log
    /// goes with it).
    pub async fn stop_with_output(mut self) -> Result<(std::process::ExitStatus, String)> {
        signal(self.child.id(), "-TERM")?;
        let until = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status, self.output()));
            }
            ensure!(tokio::time::Instant::now() < until, "the second {} did not stop within 40 s of SIGTERM", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Everything the instance printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn tail(&self) -> String {
        let text = self.output();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
