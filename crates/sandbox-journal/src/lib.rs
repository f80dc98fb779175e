//! The sandboxes' memory across restarts. A real payment provider or carrier
//! does not forget what it agreed to because one of its processes died: a
//! forgotten capture could never be refunded, a forgotten shipment would never
//! be delivered. Every change is appended as one JSON line before the request
//! that made it is answered; on start the lines are folded (a later line about
//! the same thing wins), the file is rewritten compacted, and the sandbox takes
//! up what was under way.
//!
//! Each line is one `write` to a file opened for appending, so a SIGKILL of
//! the sandbox loses nothing it answered; a line torn by a crash mid-write can
//! only be the last one, and is dropped with a warning. The file is not synced
//! per line: the sandbox survives its own death, not the machine's.
//!
//! The journal knows nothing of what a sandbox keeps: each sandbox says what
//! its lines are and how they fold, with [`Fold`].

use std::{
    fs::{self, File, OpenOptions},
    io::{BufRead, BufReader, Write},
    marker::PhantomData,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Serialize};

/// What a journal's lines fold into: the state a sandbox starts from.
pub trait Fold: Default {
    type Entry: Serialize + DeserializeOwned;

    /// Takes in one line; a later line about the same thing replaces an earlier one.
    fn apply(&mut self, entry: Self::Entry);

    /// The fewest lines that fold back into this state: what the journal is
    /// compacted to when it is opened.
    fn entries(&self) -> Vec<Self::Entry>;
}

pub struct Journal<F: Fold> {
    path: PathBuf,
    file: Mutex<File>,
    // `fn() -> F` rather than `F`: the journal holds no state, so it is Send
    // and Sync whatever the state is.
    fold: PhantomData<fn() -> F>,
}

impl<F: Fold> Journal<F> {
    /// Reads what the journal holds, rewrites it compacted and opens it for
    /// appending. A corrupt line before the last one is refused: the journal
    /// would otherwise silently lose what the sandbox agreed to.
    pub fn open(path: &Path) -> Result<(Self, F)> {
        let recovered = if path.exists() { read::<F>(path)? } else { F::default() };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let compacted = path.with_extension("compacting");
        {
            let mut out = File::create(&compacted).with_context(|| format!("creating {}", compacted.display()))?;
            for entry in recovered.entries() {
                out.write_all(&line(&entry)?)?;
            }
            out.sync_all()?;
        }
        fs::rename(&compacted, path).with_context(|| format!("replacing {}", path.display()))?;
        let file = OpenOptions::new().append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok((Journal { path: path.to_owned(), file: Mutex::new(file), fold: PhantomData }, recovered))
    }

    pub fn append(&self, entry: &F::Entry) -> Result<()> {
        let line = line(entry)?;
        let mut file = self.file.lock().expect("journal lock");
        file.write_all(&line).with_context(|| format!("appending to {}", self.path.display()))
    }

    /// [`Journal::append`] for a sandbox about to answer: one that cannot
    /// write down what it agreed to must not answer as if it had, so the
    /// process stops instead.
    pub fn keep(&self, entry: &F::Entry) {
        if let Err(e) = self.append(entry) {
            tracing::error!(error = %e, "the journal cannot be written: stopping");
            std::process::exit(1);
        }
    }
}

fn line(entry: &impl Serialize) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(entry)?;
    line.push(b'\n');
    Ok(line)
}

fn read<F: Fold>(path: &Path) -> Result<F> {
    let lines: Vec<String> = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?).lines().collect::<Result<_, _>>()?;
    let mut recovered = F::default();
    for (n, text) in lines.iter().enumerate() {
        match serde_json::from_str::<F::Entry>(text) {
            Ok(entry) => recovered.apply(entry),
            Err(e) if n + 1 == lines.len() => tracing::warn!(journal = %path.display(), error = %e, "dropping a torn last line"),
            Err(e) => bail!("{} line {}: {e}", path.display(), n + 1),
        }
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The latest count per name: the smallest state with "a later line wins".
    #[derive(Debug, Default, PartialEq)]
    struct Counts(BTreeMap<String, u32>);

    impl Fold for Counts {
        type Entry = (String, u32);

        fn apply(&mut self, (name, count): (String, u32)) {
            self.0.insert(name, count);
        }

        fn entries(&self) -> Vec<(String, u32)> {
            self.0.iter().map(|(name, count)| (name.clone(), *count)).collect()
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("outflow-sandbox-journal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir.join("nested").join("journal.jsonl")
    }

    #[test]
    fn lines_fold_with_the_last_winning_and_are_compacted_on_reopen() {
        let path = scratch("fold");
        let (journal, recovered) = Journal::<Counts>::open(&path).unwrap();
        assert_eq!(recovered, Counts::default(), "a journal that does not exist yet is empty, its directory created");
        for entry in [("a", 1), ("b", 1), ("a", 2), ("a", 3)] {
            journal.append(&(entry.0.to_owned(), entry.1)).unwrap();
        }
        drop(journal);
        let (_, recovered) = Journal::<Counts>::open(&path).unwrap();
        assert_eq!(recovered.0, BTreeMap::from([("a".to_owned(), 3), ("b".to_owned(), 1)]));
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2, "compacted to what folds back into the state");
        assert!(!path.with_extension("compacting").exists());
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_a_corrupt_earlier_line_refused() {
        let path = scratch("torn");
        let (journal, _) = Journal::<Counts>::open(&path).unwrap();
        journal.keep(&("a".to_owned(), 7));
        drop(journal);
        let whole = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("{whole}[\"b\",")).unwrap();
        let (_, recovered) = Journal::<Counts>::open(&path).unwrap();
        assert_eq!(recovered.0, BTreeMap::from([("a".to_owned(), 7)]));

        fs::write(&path, format!("not json\n{whole}")).unwrap();
        let refused = Journal::<Counts>::open(&path).err().expect("a corrupt line before the last is refused");
        assert!(refused.to_string().contains("line 1"), "{refused}");
    }
}
