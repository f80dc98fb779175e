//! One fault: injected, held, brought back, and timed until the component
//! answers its health check again.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use outflow_stack_tests::services;
use serde::Serialize;

use crate::{
    component::{shell, Component},
    plan::{Action, Fault},
};

/// What happened to one fault.
#[derive(Clone, Debug, Serialize)]
pub struct Injected {
    pub component: Component,
    pub action: Action,
    /// Since the start of the run.
    pub at_ms: u64,
    /// From the fault until the component was brought back (restart begun or SIGCONT).
    pub down_ms: u64,
    /// From being brought back until its health check passed.
    pub recovered_ms: u64,
    /// From the fault until the first order placed since then was confirmed
    /// (None: none was); filled in after the run.
    pub confirms_again_ms: Option<u64>,
}

pub async fn inject(fault: &Fault, run_started: Instant) -> Result<Injected> {
    let component = fault.component;
    let at = Instant::now();
    let pids = component.processes().with_context(|| format!("{} is not running before its fault", component.name()))?;
    match fault.action {
        Action::Kill => {
            signal(&pids[..1], libc::SIGKILL);
            wait_gone(pids[0]).await?;
        }
        Action::ImmediateShutdown => {
            shell(r#"as_pg "$PG_BIN/pg_ctl" -D "$OUTFLOW_STATE/postgres/data" -m immediate -w -t 60 stop >/dev/null"#).await?;
        }
        Action::Freeze { ms } => {
            signal(&pids, libc::SIGSTOP);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    let back = Instant::now();
    match fault.action {
        Action::Freeze { .. } => signal(&pids, libc::SIGCONT),
        Action::Kill | Action::ImmediateShutdown => component.start().await?,
    }
    wait_healthy(component, Duration::from_secs(120)).await?;
    Ok(Injected {
        component,
        action: fault.action,
        at_ms: millis(at - run_started),
        down_ms: millis(back - at),
        recovered_ms: millis(back.elapsed()),
        confirms_again_ms: None,
    })
}

pub(crate) fn signal(pids: &[u32], signal: libc::c_int) {
    for pid in pids {
        // SAFETY: kill(2) has no memory-safety preconditions; a pid that has
        // exited meanwhile only makes it return ESRCH.
        unsafe { libc::kill(*pid as libc::pid_t, signal) };
    }
}

pub(crate) async fn wait_gone(pid: u32) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(20);
    while services::running(pid) {
        anyhow::ensure!(Instant::now() < until, "pid {pid} still runs 20 s after SIGKILL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub async fn wait_healthy(component: Component, within: Duration) -> Result<()> {
    let until = Instant::now() + within;
    while !component.healthy().await {
        anyhow::ensure!(Instant::now() < until, "{} is not healthy {within:?} after its fault", component.name());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
