//! Problems with a configuration, and the error that lists all of them.
//!
//! Loading and validation never stop at the first mistake: every check runs, and each failed
//! check adds one [`Problem`] — the key as users write it (`limits.max_in_flight`), what is wrong
//! in words (never Rust type names), and a valid example. [`ConfigError`] is the list; it prints
//! one line per problem:
//!
//! ```text
//! the configuration has 2 problems:
//! - limits.max_in_flight: expected a whole number, found the string "64"; e.g. max_in_flight = 64
//! - sink.url (OUTLAKE_SINK__URL): scheme "ftp" is not supported; use file, s3, az, abfss or gs; e.g. url = "file:///var/lib/outlake/out"
//! ```
//!
//! A key set by an environment variable names the variable after the key path.

use std::fmt;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path as written in TOML (`source.page_size`); a bare section or top-level key
    /// (`sorce`) when the problem is with that.
    pub key: String,
    /// What is wrong, in words: "is missing", "expected a whole number, found the string \"64\"".
    pub message: String,
    /// A valid setting (`page_size = 1000`); empty when no single example fits.
    pub example: String,
    /// The environment variable that set the key, when one did (`OUTLAKE_SOURCE__PAGE_SIZE`).
    pub env_var: Option<String>,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>, example: impl Into<String>) -> Problem {
        Problem { key: key.into(), message: message.into(), example: example.into(), env_var: None }
    }
}

impl fmt::Display for Problem {
    /// `limits.max_in_flight (OUTLAKE_LIMITS__MAX_IN_FLIGHT): expected …; e.g. max_in_flight = 64`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)?;
        if let Some(var) = &self.env_var {
            write!(f, " ({var})")?;
        }
        write!(f, ": {}", self.message)?;
        if !self.example.is_empty() {
            // "did you mean `x`? e.g. …" rather than "…?; e.g. …".
            let sep = if self.message.ends_with('?') { " " } else { "; " };
            write!(f, "{sep}e.g. {}", self.example)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// One or more problems with a configuration (never empty). [`validate`](crate::validate)
/// returns every problem it finds, not only the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// `problems` must not be empty.
    pub fn new(problems: Vec<Problem>) -> ConfigError {
        assert!(!problems.is_empty(), "a ConfigError lists at least one problem");
        ConfigError { problems }
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

impl From<Problem> for ConfigError {
    fn from(p: Problem) -> Self {
        ConfigError::new(vec![p])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, "the configuration", &self.problems)
    }
}

impl std::error::Error for ConfigError {}

/// `<subject> has 3 problems:` and one `- ` line per problem.
pub(crate) fn write_list(f: &mut fmt::Formatter<'_>, subject: &str, problems: &[Problem]) -> fmt::Result {
    let n = problems.len();
    write!(f, "{subject} has {n} problem{}:", if n == 1 { "" } else { "s" })?;
    for p in problems {
        write!(f, "\n- {p}")?;
    }
    Ok(())
}

/// `OUTLAKE_LIMITS__MAX_IN_FLIGHT` for `limits.max_in_flight`.
pub fn env_var_for(key: &str) -> String {
    format!("OUTLAKE_{}", key.replace('.', "__").to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_problem_with_key_env_var_and_example() {
        let mut from_env = Problem::new("sink.url", "is missing", "url = \"file:///x\"");
        from_env.env_var = Some(env_var_for("sink.url"));
        let e = ConfigError::new(vec![
            Problem::new("source.page_size", "5000 is outside 1..=1000", "page_size = 1000"),
            from_env,
            Problem::new("sorce", "unknown section", ""),
        ]);
        assert_eq!(
            e.to_string(),
            "the configuration has 3 problems:\n\
             - source.page_size: 5000 is outside 1..=1000; e.g. page_size = 1000\n\
             - sink.url (OUTLAKE_SINK__URL): is missing; e.g. url = \"file:///x\"\n\
             - sorce: unknown section"
        );
        assert!(ConfigError::from(Problem::new("a.b", "c", "d")).to_string().starts_with("the configuration has 1 problem:\n"));
        let near = Problem::new("sink.ur", "unknown key; did you mean `sink.url`?", "url = \"file:///x\"");
        assert_eq!(near.to_string(), "sink.ur: unknown key; did you mean `sink.url`? e.g. url = \"file:///x\"");
    }
}
