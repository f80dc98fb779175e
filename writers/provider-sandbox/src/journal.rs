//! The sandbox's memory across restarts. A real provider does not forget a
//! transaction because one of its processes died: a forgotten capture could
//! never be refunded (the refund would find nothing) and a forgotten pending
//! payment would never settle. Every change of a transaction is appended as
//! one JSON line before the request that made it is answered; on start the
//! lines are folded (the last line of an order wins), the file is rewritten
//! compacted, and what was under way is taken up again.
//!
//! Each line is one `write` to a file opened for appending, so a SIGKILL of
//! the sandbox loses nothing it answered; a line torn by a crash mid-write can
//! only be the last one, and is dropped with a warning. The file is not synced
//! per line: the sandbox survives its own death, not the machine's.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{Outcome, Transaction};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Transaction(Transaction),
    Forced { order_id: String, outcome: Outcome },
}

/// What a journal held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    pub transactions: HashMap<String, Transaction>,
    pub forced: HashMap<String, Outcome>,
}

pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Reads what the journal holds, rewrites it compacted and opens it for
    /// appending. A corrupt line before the last one is refused: the journal
    /// would otherwise silently lose transactions.
    pub fn open(path: &Path) -> Result<(Journal, Recovered)> {
        let recovered = if path.exists() { read(path)? } else { Recovered::default() };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let compacted = path.with_extension("compacting");
        {
            let mut out = File::create(&compacted).with_context(|| format!("creating {}", compacted.display()))?;
            let transactions = recovered.transactions.values().map(|t| Entry::Transaction(t.clone()));
            let forced = recovered.forced.iter().map(|(order_id, outcome)| Entry::Forced { order_id: order_id.clone(), outcome: *outcome });
            for entry in transactions.chain(forced) {
                out.write_all(&line(&entry)?)?;
            }
            out.sync_all()?;
        }
        fs::rename(&compacted, path).with_context(|| format!("replacing {}", path.display()))?;
        let file = OpenOptions::new().append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok((Journal { path: path.to_owned(), file: Mutex::new(file) }, recovered))
    }

    pub fn append(&self, entry: &Entry) -> Result<()> {
        let line = line(entry)?;
        let mut file = self.file.lock().expect("journal lock");
        file.write_all(&line).with_context(|| format!("appending to {}", self.path.display()))
    }
}

fn line(entry: &Entry) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(entry)?;
    line.push(b'\n');
    Ok(line)
}

fn read(path: &Path) -> Result<Recovered> {
    let lines: Vec<String> = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?).lines().collect::<Result<_, _>>()?;
    let mut recovered = Recovered::default();
    for (n, text) in lines.iter().enumerate() {
        match serde_json::from_str::<Entry>(text) {
            Ok(Entry::Transaction(t)) => {
                recovered.transactions.insert(t.order_id.clone(), t);
            }
            Ok(Entry::Forced { order_id, outcome }) => {
                recovered.forced.insert(order_id, outcome);
            }
            Err(e) if n + 1 == lines.len() => tracing::warn!(journal = %path.display(), error = %e, "dropping a torn last line"),
            Err(e) => bail!("{} line {}: {e}", path.display(), n + 1),
        }
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn transaction(order_id: &str, status: Status) -> Transaction {
        Transaction {
            transaction_id: format!("t-{order_id}"),
            order_id: order_id.into(),
            gross_amount: "9.90".into(),
            token: "token".into(),
            redirect_url: "http://127.0.0.1/pay/token".into(),
            outcome: None,
            transaction_status: status,
            notified: false,
            refunded: false,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("outflow-sandbox-journal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir.join("journal.jsonl")
    }

    #[test]
    fn the_last_line_of_an_order_wins_and_survives_a_reopen() {
        let path = scratch("reopen");
        let (journal, recovered) = Journal::open(&path).unwrap();
        assert!(recovered.transactions.is_empty());
        journal.append(&Entry::Transaction(transaction("a", Status::Pending))).unwrap();
        journal.append(&Entry::Transaction(transaction("b", Status::Pending))).unwrap();
        journal.append(&Entry::Transaction(transaction("a", Status::Settlement))).unwrap();
        journal.append(&Entry::Forced { order_id: "b".into(), outcome: Outcome::Deny }).unwrap();
        drop(journal);
        let (_, recovered) = Journal::open(&path).unwrap();
        assert_eq!(recovered.transactions["a"].transaction_status, Status::Settlement);
        assert_eq!(recovered.transactions["b"].transaction_status, Status::Pending);
        assert_eq!(recovered.forced["b"], Outcome::Deny);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 3, "compacted to one line per order and forced outcome");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_a_corrupt_earlier_line_refused() {
        let path = scratch("torn");
        let (journal, _) = Journal::open(&path).unwrap();
        journal.append(&Entry::Transaction(transaction("a", Status::Refund))).unwrap();
        drop(journal);
        let whole = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("{whole}{{\"kind\":\"transaction\",\"order_")).unwrap();
        let (_, recovered) = Journal::open(&path).unwrap();
        assert_eq!(recovered.transactions["a"].transaction_status, Status::Refund);

        fs::write(&path, format!("not json\n{whole}")).unwrap();
        let refused = Journal::open(&path).err().expect("a corrupt line before the last is refused");
        assert!(refused.to_string().contains("line 1"), "{refused}");
    }
}
