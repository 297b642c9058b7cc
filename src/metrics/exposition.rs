//! Reading Prometheus / OpenMetrics text back: what `coresip stats` shows an operator,
//! and what the tests use to check that `/metrics` is well formed.
//!
//! Only the subset coresip emits is understood: `# HELP`, `# TYPE`, `# UNIT` and
//! `# EOF` comments, and sample lines `name{label="value",...} value` without
//! timestamps or exemplars. Every sample must belong to a family announced by both a
//! HELP and a TYPE line.

use std::fmt;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name, with any `_total`, `_bucket`, `_sum`, `_count` suffix.
    pub name: String,
    /// The labels in the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family: the name HELP and TYPE lines announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    pub help: Option<String>,
    /// `counter`, `gauge`, `histogram`, `summary`, …
    pub kind: Option<String>,
}

impl Family {
    /// True when `sample` is a series of this family: the family name itself or the
    /// name plus a suffix its type allows.
    fn owns(&self, sample: &str) -> bool {
        let Some(rest) = sample.strip_prefix(self.name.as_str()) else {
            return false;
        };
        let suffixes: &[&str] = match self.kind.as_deref() {
            Some("counter") => &["_total", "_created"],
            Some("histogram") | Some("gaugehistogram") => {
                &["_bucket", "_sum", "_count", "_created", "_gcount", "_gsum"]
            }
            Some("summary") => &["", "_sum", "_count", "_created"],
            _ => &[""],
        };
        suffixes.contains(&rest)
    }
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub families: Vec<Family>,
    pub samples: Vec<Sample>,
}

/// Why a text is not a well-formed exposition. Lines count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpositionError {
    /// A comment line that is none of HELP, TYPE, UNIT, EOF.
    UnknownComment { line: usize },
    /// A sample line without `name value` shape, or a bad metric or label name.
    Syntax { line: usize },
    /// A label set that does not close, or a value without quotes.
    Labels { line: usize },
    /// A value that is not a number.
    Value { line: usize },
    /// A sample of no announced family.
    NoFamily { line: usize, name: String },
    /// A family without a HELP line.
    NoHelp(String),
    /// A family without a TYPE line.
    NoType(String),
    /// Text after `# EOF`.
    AfterEof { line: usize },
}

impl fmt::Display for ExpositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpositionError::UnknownComment { line } => write!(f, "line {line}: unknown comment"),
            ExpositionError::Syntax { line } => {
                write!(f, "line {line}: not `name{{labels}} value`")
            }
            ExpositionError::Labels { line } => write!(f, "line {line}: malformed labels"),
            ExpositionError::Value { line } => write!(f, "line {line}: value is not a number"),
            ExpositionError::NoFamily { line, name } => {
                write!(f, "line {line}: {name} belongs to no announced family")
            }
            ExpositionError::NoHelp(n) => write!(f, "family {n} has no HELP line"),
            ExpositionError::NoType(n) => write!(f, "family {n} has no TYPE line"),
            ExpositionError::AfterEof { line } => write!(f, "line {line}: text after # EOF"),
        }
    }
}

impl std::error::Error for ExpositionError {}

fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `k="v",k2="v2"` (the part between the braces), with `\\`, `\"`, `\n` escapes.
fn labels(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Some(out);
        }
        let (key, rest) = s.split_once('=')?;
        let key = key.trim();
        if !is_name(key) {
            return None;
        }
        let mut chars = rest.trim_start().strip_prefix('"')?.char_indices();
        let mut val = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => val.push('\n'),
                    c @ ('\\' | '"') => val.push(c),
                    _ => return None,
                },
                (_, c) => val.push(c),
            }
        };
        out.push((key.to_owned(), val));
        let after = rest.trim_start().get(end + 2..)?.trim_start();
        s = match after.strip_prefix(',') {
            Some(r) => r,
            None if after.is_empty() => after,
            None => return None,
        };
    }
}

/// The closing brace of a label set opened just before `s`, outside quoted values.
fn closing_brace(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn family_mut<'a>(families: &'a mut Vec<Family>, name: &str) -> &'a mut Family {
    let i = match families.iter().position(|f| f.name == name) {
        Some(i) => i,
        None => {
            families.push(Family {
                name: name.to_owned(),
                help: None,
                kind: None,
            });
            families.len() - 1
        }
    };
    &mut families[i]
}

/// Parses `text` and checks that every family has HELP and TYPE and every sample a
/// family.
pub fn parse(text: &str) -> Result<Exposition, ExpositionError> {
    let mut exp = Exposition::default();
    let mut eof = false;
    let mut sample_lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if eof {
            return Err(ExpositionError::AfterEof { line });
        }
        if let Some(comment) = raw.strip_prefix('#') {
            let comment = comment.trim_start();
            if comment == "EOF" {
                eof = true;
                continue;
            }
            let (kw, rest) = comment.split_once(' ').unwrap_or((comment, ""));
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            if !is_name(name) {
                return Err(ExpositionError::Syntax { line });
            }
            match kw {
                "HELP" => family_mut(&mut exp.families, name).help = Some(arg.to_owned()),
                "TYPE" => family_mut(&mut exp.families, name).kind = Some(arg.trim().to_owned()),
                "UNIT" => {}
                _ => return Err(ExpositionError::UnknownComment { line }),
            }
            continue;
        }
        let (name, labels, rest) = match raw.find(['{', ' ']) {
            Some(b) if raw[b..].starts_with('{') => {
                let close = closing_brace(&raw[b + 1..]).ok_or(ExpositionError::Labels { line })?;
                let inner = &raw[b + 1..b + 1 + close];
                let labels = labels(inner).ok_or(ExpositionError::Labels { line })?;
                (&raw[..b], labels, &raw[b + close + 2..])
            }
            Some(b) => (&raw[..b], Vec::new(), &raw[b..]),
            None => return Err(ExpositionError::Syntax { line }),
        };
        if !is_name(name) {
            return Err(ExpositionError::Syntax { line });
        }
        let mut fields = rest.split_whitespace();
        let v = fields.next().ok_or(ExpositionError::Syntax { line })?;
        let value = value(v).ok_or(ExpositionError::Value { line })?;
        // A timestamp may follow; anything more (exemplars) is not ours.
        if let Some(ts) = fields.next() {
            if ts.parse::<f64>().is_err() || fields.next().is_some() {
                return Err(ExpositionError::Syntax { line });
            }
        }
        sample_lines.push(line);
        exp.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    for f in &exp.families {
        if f.help.is_none() {
            return Err(ExpositionError::NoHelp(f.name.clone()));
        }
        if f.kind.is_none() {
            return Err(ExpositionError::NoType(f.name.clone()));
        }
    }
    for (s, &line) in exp.samples.iter().zip(&sample_lines) {
        if !exp.families.iter().any(|f| f.owns(&s.name)) {
            return Err(ExpositionError::NoFamily {
                line,
                name: s.name.clone(),
            });
        }
    }
    Ok(exp)
}

impl Exposition {
    /// The value of the series `name` whose labels include every pair in `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
    }

    /// The samples of the series `name`.
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }
}
