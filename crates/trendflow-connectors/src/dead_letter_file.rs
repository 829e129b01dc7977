//! Dead letters as JSON lines: one object per record set aside, with its position and reason.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use trendflow_core::{DeadLetter, DeadLetterSink, OperatorError};

pub struct DeadLetterFile {
    path: PathBuf,
    /// Opened at the first letter: a clean run leaves no file behind.
    out: Option<BufWriter<File>>,
}

impl DeadLetterFile {
    /// Appends to `path` (created, with its directory, when the first letter comes).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(DeadLetterFile {
            path: path.to_path_buf(),
            out: None,
        })
    }

    fn writer(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        if self.out.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.out = Some(BufWriter::new(f));
        }
        Ok(self.out.as_mut().unwrap())
    }
}

impl DeadLetterSink for DeadLetterFile {
    fn write(&mut self, letters: &[DeadLetter]) -> Result<(), OperatorError> {
        for d in letters {
            let v = serde_json::json!({
                "component": &*d.component,
                "origin": &*d.origin,
                "line": d.line,
                "reason": d.reason.as_str(),
                "detail": d.detail,
                "excerpt": d.excerpt,
            });
            let path = self.path.display().to_string();
            let w = self
                .writer()
                .map_err(|e| OperatorError::new(format!("{path}: {e}")))?;
            writeln!(w, "{v}").map_err(|e| OperatorError::new(format!("{path}: {e}")))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OperatorError> {
        match &mut self.out {
            Some(w) => w
                .flush()
                .map_err(|e| OperatorError::new(format!("{}: {e}", self.path.display()))),
            None => Ok(()),
        }
    }
}
