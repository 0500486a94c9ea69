//! The Citus DDL lint: `migrations/*.sql` keep the schema ready for
//! `SELECT create_distributed_table('<table>', 'host')` on every metrics table, the step
//! past one PostgreSQL node (docs/SCALING.md). A tidy test (`cargo test -p xtask`).
//!
//! What Citus documents as blocking distribution by a column, and what is checked here:
//! - "Primary keys and uniqueness constraints must include the distribution column"
//!   (Citus docs, *Creating and Modifying Distributed Tables (DDL)*, Adding/Removing
//!   Constraints): every PRIMARY KEY, UNIQUE constraint, unique index and EXCLUDE constraint
//!   on a table of ours names `host` as a plain column (an expression such as
//!   `lower(host)` does not count; for EXCLUDE, `host WITH =`).
//! - Foreign keys only between co-located tables, with the distribution column in the key
//!   (same page): we have no reason for one, so none at all (`REFERENCES`, `FOREIGN KEY`).
//! - No sequences (`serial` types, identity columns, `CREATE SEQUENCE`, `nextval`): a
//!   sequence lives on the coordinator, every insert on a worker would go back to it.
//! - Every table has a `host` column, `NOT NULL` (Citus refuses an INSERT with NULL in
//!   the distribution column), and no migration alters its type, renames or drops it
//!   ("the data type of the distribution column cannot be altered").
//! - No table inheritance (`INHERITS`, `ALTER TABLE … INHERIT`): Citus distributes
//!   declarative partitions, not inheritance children.
//! - No triggers on our tables (Citus docs, *Triggers on Distributed Tables*: not supported
//!   on distributed tables without `citus.enable_unsafe_triggers`).
//!
//! How: a small tokenizer (comments, strings, quoted identifiers, dollar-quoted bodies) and
//! a reader of the statements that make keys and tables (CREATE TABLE, CREATE INDEX, ALTER
//! TABLE, DROP TABLE, CREATE TRIGGER). PL/pgSQL bodies are read as SQL, and so is a string
//! literal that starts with CREATE, ALTER or DROP (dynamic SQL, `EXECUTE format(…)`); a
//! `%I` placeholder stands for a table of ours. It is not a SQL parser, so it is strict
//! where it cannot see: a `PRIMARY KEY`, `UNIQUE`, `EXCLUDE`, `REFERENCES` or `FOREIGN
//! KEY` that none of those statements accounted for (a key built by concatenating strings,
//! say) is itself a violation, as is a table whose columns it cannot see (`CREATE TABLE …
//! AS`, `OF type`, `LIKE` a table it does not know). Partitions (`PARTITION OF`) take their
//! parent's columns, and so does `LIKE %I` (its source is one of the tables the migrations
//! made, each held to a NOT NULL host); a partitioned table's unique key on
//! (host, "timestamp") is what it wants.

use std::collections::HashMap;
use std::path::Path;

/// The tables the lint insists on at the end of the migrations (store::TABLES).
const METRICS_TABLES: [&str; 5] = [
    "metrics_cpu",
    "metrics_ram",
    "metrics_gpu",
    "metrics_temperature",
    "metrics_disk",
];

/// Tables that would stay local (or become Citus reference tables) and so need no `host`,
/// each with the reason.
const LOCAL_TABLES: &[&str] = &[
    // One row per UTC day (which collector compacts it, V6): the fleet's bookkeeping, a
    // handful of rows, read and written on the coordinator only.
    "metrics_compaction",
];

/// The distribution column.
const HOST: &str = "host";

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A keyword or unquoted identifier, lower-cased; also numbers and `%I` placeholders.
    Word(String),
    /// A `"quoted"` identifier, as written.
    Quoted(String),
    /// A `'string'` literal's tokens, and whether it reads as dynamic DDL (starts with
    /// CREATE, ALTER or DROP).
    Str(Vec<Token>, bool),
    /// A dollar-quoted body (`$$ … $$`, `$fn$ … $fn$`): PL/pgSQL, read as SQL.
    Body(Vec<Token>),
    Punct(char),
}

#[derive(Clone, Debug, PartialEq)]
struct Token {
    tok: Tok,
    line: usize,
}

fn tokenize(text: &str, first_line: usize) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = first_line;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            // Block comments nest in PostgreSQL.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '\'' {
            // E'…' strings: the `e` word just before was their prefix.
            let escapes = matches!(out.last(), Some(Token { tok: Tok::Word(w), .. }) if w == "e")
                && i > 0
                && matches!(chars[i - 1], 'e' | 'E');
            if escapes {
                out.pop();
            }
            let mut body = String::new();
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                if d == '\n' {
                    line += 1;
                }
                if escapes && d == '\\' && i + 1 < chars.len() {
                    body.push(chars[i + 1]);
                    i += 2;
                } else if d == '\'' && chars.get(i + 1) == Some(&'\'') {
                    body.push('\'');
                    i += 2;
                } else if d == '\'' {
                    i += 1;
                    break;
                } else {
                    body.push(d);
                    i += 1;
                }
            }
            let inner = tokenize(&body, start_line);
            let ddl = matches!(inner.first(), Some(Token { tok: Tok::Word(w), .. })
                if matches!(w.as_str(), "create" | "alter" | "drop"));
            out.push(Token {
                tok: Tok::Str(inner, ddl),
                line: start_line,
            });
        } else if c == '"' {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' && chars.get(i + 1) == Some(&'"') {
                    name.push('"');
                    i += 2;
                } else if chars[i] == '"' {
                    i += 1;
                    break;
                } else {
                    name.push(chars[i]);
                    i += 1;
                }
            }
            out.push(Token {
                tok: Tok::Quoted(name),
                line: start_line,
            });
        } else if c == '$'
            && let Some(tag_len) = dollar_tag(&chars[i..])
        {
            let tag: String = chars[i..i + tag_len].iter().collect();
            let body_start = i + tag_len;
            let tag_chars: Vec<char> = tag.chars().collect();
            let mut j = body_start;
            while j < chars.len() && !chars[j..].starts_with(&tag_chars) {
                j += 1;
            }
            let body: String = chars[body_start..j.min(chars.len())].iter().collect();
            line += body.matches('\n').count();
            out.push(Token {
                tok: Tok::Body(tokenize(&body, start_line)),
                line: start_line,
            });
            i = (j + tag_len).min(chars.len());
        } else if c == '%'
            && let Some(len) = placeholder(&chars[i..])
        {
            let word: String = chars[i..i + len].iter().collect();
            out.push(Token {
                tok: Tok::Word(word.to_lowercase()),
                line: start_line,
            });
            i += len;
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                word.push(chars[i]);
                i += 1;
            }
            out.push(Token {
                tok: Tok::Word(word.to_lowercase()),
                line: start_line,
            });
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line: start_line,
            });
            i += 1;
        }
    }
    out
}

/// The length of a dollar-quote tag (`$$`, `$body$`) at the start of `chars`.
fn dollar_tag(chars: &[char]) -> Option<usize> {
    let mut j = 1;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        if j == 1 && chars[j].is_ascii_digit() {
            return None; // `$1`: a parameter
        }
        j += 1;
    }
    (chars.get(j) == Some(&'$')).then_some(j + 1)
}

/// The length of a `format()` placeholder (`%I`, `%s`, `%1$I`) at the start of `chars`.
fn placeholder(chars: &[char]) -> Option<usize> {
    let mut j = 1;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    if j > 1 {
        if chars.get(j) != Some(&'$') {
            return None;
        }
        j += 1;
    }
    chars
        .get(j)
        .filter(|c| matches!(c, 'I' | 'i' | 's' | 'L'))
        .map(|_| j + 1)
}

fn is_word(t: Option<&Token>, w: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Word(x), .. }) if x == w)
}

/// A name (identifier, quoted or not) as PostgreSQL folds it.
fn name_of(t: Option<&Token>) -> Option<String> {
    match t.map(|t| &t.tok) {
        Some(Tok::Word(w)) => Some(w.clone()),
        Some(Tok::Quoted(q)) => Some(q.clone()),
        _ => None,
    }
}

fn is_placeholder(name: &str) -> bool {
    name.starts_with('%')
}

/// Splits `toks` at top-level occurrences of `sep`.
fn split_top(toks: &[Token], sep: char) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t.tok {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') => depth -= 1,
            Tok::Punct(c) if c == sep && depth == 0 => {
                parts.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < toks.len() {
        parts.push((start, toks.len()));
    }
    parts
}

/// The index just past the parenthesis that closes the one at `open`.
fn close_paren(toks: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// What the migrations have made of one table so far.
#[derive(Clone, Debug, Default)]
struct Table {
    has_host: bool,
    host_not_null: bool,
    partition_of: Option<String>,
}

struct Lint {
    tables: HashMap<String, Table>,
    problems: Vec<String>,
    file: String,
}

impl Lint {
    fn problem(&mut self, line: usize, text: impl std::fmt::Display) {
        self.problems.push(format!("{}:{line}: {text}", self.file));
    }

    fn ours(name: &str) -> bool {
        !LOCAL_TABLES.contains(&name)
    }

    /// Lints one token stream (a file, a body, a dynamic statement).
    fn stream(&mut self, toks: &[Token]) {
        let mut consumed = vec![false; toks.len()];
        for (s, e) in split_top(toks, ';') {
            let stmt = &toks[s..e];
            if let Some(head) = find_head(stmt) {
                let used = self.statement(&stmt[head..]);
                for k in used {
                    consumed[s + head + k] = true;
                }
            }
        }
        for (i, t) in toks.iter().enumerate() {
            let piece = |k: Option<usize>| {
                matches!(
                    k.and_then(|k| toks.get(k)).map(|t| &t.tok),
                    Some(Tok::Punct('|'))
                )
            };
            match &t.tok {
                Tok::Body(inner) => self.stream(inner),
                Tok::Str(inner, true) => self.stream(inner),
                // A piece of SQL put together with `||`: a key in it cannot be read.
                Tok::Str(inner, false) if piece(i.checked_sub(1)) || piece(Some(i + 1)) => {
                    let key = inner.iter().enumerate().any(|(k, w)| {
                        ["unique", "exclude", "references"]
                            .iter()
                            .any(|x| is_word(Some(w), x))
                            || (["primary", "foreign"].iter().any(|x| is_word(Some(w), x))
                                && is_word(inner.get(k + 1), "key"))
                    });
                    if key {
                        self.problem(t.line, "a key in SQL put together with `||`: this lint cannot read it (write the statement as one literal, names as format() placeholders)");
                    }
                }
                _ => {}
            }
            let next = toks.get(i + 1);
            let word = match &t.tok {
                Tok::Word(w) => w.as_str(),
                _ => continue,
            };
            match word {
                "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8" => {
                    self.problem(t.line, format!("`{word}` makes a sequence: Citus workers would all go back to the coordinator for ids; the key is (host, \"timestamp\")"));
                }
                "nextval" => self.problem(
                    t.line,
                    "nextval(): a sequence; Citus workers would all go back to the coordinator for it",
                ),
                "sequence" if i > 0 && is_word(toks.get(i - 1), "create") => self.problem(
                    t.line,
                    "CREATE SEQUENCE: no sequences on a schema kept ready for Citus",
                ),
                "as" if is_word(next, "identity") => self.problem(
                    t.line,
                    "an identity column is a sequence: none on a schema kept ready for Citus",
                ),
                "references" => self.problem(
                    t.line,
                    "a foreign key (REFERENCES): Citus enforces one only between co-located tables with host in the key; the metrics tables have none",
                ),
                "foreign" if is_word(next, "key") => self.problem(
                    t.line,
                    "a FOREIGN KEY: Citus enforces one only between co-located tables with host in the key; the metrics tables have none",
                ),
                _ if consumed[i] => {}
                "unique" | "exclude" => self.problem(
                    t.line,
                    format!("a {} key this lint cannot read (write it as one literal statement: CREATE UNIQUE INDEX … ON t (host, …), or a PRIMARY KEY/UNIQUE (host, …) in CREATE/ALTER TABLE)", word.to_uppercase()),
                ),
                "primary" if is_word(next, "key") => self.problem(
                    t.line,
                    "a PRIMARY KEY this lint cannot read (write it in CREATE TABLE or ALTER TABLE … ADD PRIMARY KEY (host, …))",
                ),
                _ => {}
            }
        }
    }

    /// Reads one statement that starts at a head; returns the indices (into `stmt`) of the
    /// key keywords it checked.
    fn statement(&mut self, stmt: &[Token]) -> Vec<usize> {
        let line = stmt[0].line;
        let mut i = 1;
        if is_word(stmt.first(), "create") {
            if is_word(stmt.get(i), "or") && is_word(stmt.get(i + 1), "replace") {
                i += 2;
            }
            while [
                "global",
                "local",
                "temp",
                "temporary",
                "unlogged",
                "constraint",
            ]
            .iter()
            .any(|w| is_word(stmt.get(i), w))
            {
                i += 1;
            }
            if is_word(stmt.get(i), "table") {
                return self.create_table(stmt, i + 1, line);
            }
            if is_word(stmt.get(i), "unique") && is_word(stmt.get(i + 1), "index") {
                let mut used = vec![i];
                used.extend(self.unique_index(stmt, i + 2, line));
                return used;
            }
            if is_word(stmt.get(i), "trigger") {
                self.trigger(stmt, i + 1, line);
            }
            return Vec::new();
        }
        if is_word(stmt.first(), "alter") && is_word(stmt.get(1), "table") {
            return self.alter_table(stmt, 2, line);
        }
        if is_word(stmt.first(), "drop") && is_word(stmt.get(1), "table") {
            let mut j = 2;
            if is_word(stmt.get(j), "if") && is_word(stmt.get(j + 1), "exists") {
                j += 2;
            }
            for (s, e) in split_top(&stmt[j..], ',') {
                if let Some(name) = qualified_name(&stmt[j + s..j + e]).map(|(n, _)| n) {
                    self.tables.remove(&name);
                }
            }
        }
        Vec::new()
    }

    fn create_table(&mut self, stmt: &[Token], mut i: usize, line: usize) -> Vec<usize> {
        let mut if_not_exists = false;
        if is_word(stmt.get(i), "if") && is_word(stmt.get(i + 1), "not") {
            if_not_exists = true;
            i += 3;
        }
        let Some((name, len)) = qualified_name(&stmt[i.min(stmt.len())..]) else {
            self.problem(line, "CREATE TABLE without a name this lint can read");
            return Vec::new();
        };
        i += len;
        let mut table = Table::default();
        let mut used = Vec::new();
        if is_word(stmt.get(i), "partition") && is_word(stmt.get(i + 1), "of") {
            let parent = qualified_name(&stmt[(i + 2).min(stmt.len())..]).map(|(n, l)| {
                i += 2 + l;
                n
            });
            table.partition_of = parent;
        } else if is_word(stmt.get(i), "of") {
            self.problem(
                line,
                format!("CREATE TABLE {name} OF a type: this lint cannot see its columns (host?)"),
            );
            return Vec::new();
        } else if is_word(stmt.get(i), "as") {
            self.problem(line, format!("CREATE TABLE {name} AS …: this lint cannot see its columns (host?); create it with a column list"));
            return Vec::new();
        }
        if matches!(stmt.get(i).map(|t| &t.tok), Some(Tok::Punct('(')))
            && let Some(end) = close_paren(stmt, i)
        {
            let body = &stmt[i + 1..end - 1];
            for (s, e) in split_top(body, ',') {
                let el = &body[s..e];
                let offset = i + 1 + s;
                used.extend(
                    self.table_element(&name, el, &mut table)
                        .into_iter()
                        .map(|k| offset + k),
                );
            }
            i = end;
        } else if table.partition_of.is_none() {
            self.problem(
                line,
                format!("CREATE TABLE {name}: no column list this lint can read"),
            );
            return used;
        }
        if stmt[i.min(stmt.len())..]
            .iter()
            .any(|t| is_word(Some(t), "inherits"))
        {
            self.problem(line, format!("{name} INHERITS another table: Citus distributes declarative partitions, not inheritance children"));
        }
        if table.partition_of.is_none()
            && Self::ours(&name)
            && is_placeholder(&name)
            && !(table.has_host && table.host_not_null)
        {
            self.problem(line, format!("a table created by dynamic SQL ({name}) without `{HOST} … NOT NULL` among its columns"));
        }
        if if_not_exists && self.tables.contains_key(&name) {
            return used; // it exists: IF NOT EXISTS leaves it as it is
        }
        self.tables.insert(name, table);
        used
    }

    /// One element of a CREATE TABLE's list: a column or a table constraint. Returns the
    /// indices (into `el`) of the key keywords it checked.
    fn table_element(&mut self, table_name: &str, el: &[Token], table: &mut Table) -> Vec<usize> {
        let Some(first) = el.first() else {
            return Vec::new();
        };
        let line = first.line;
        let constraint_words = [
            "constraint",
            "primary",
            "unique",
            "exclude",
            "foreign",
            "check",
        ];
        if constraint_words.iter().any(|w| is_word(Some(first), w)) {
            return self.table_constraint(table_name, el, line);
        }
        if is_word(Some(first), "like") {
            match qualified_name(&el[1..]).map(|(n, _)| n) {
                // LIKE copies the columns and their NOT NULL. A `%I` source is a table the
                // migrations made, and each of those is held to a NOT NULL host at the end.
                Some(src) if is_placeholder(&src) => {
                    table.has_host = true;
                    table.host_not_null = true;
                }
                Some(src) if self.tables.get(&src).is_some_and(|t| t.has_host) => {
                    let src = &self.tables[&src];
                    table.has_host = true;
                    table.host_not_null = src.host_not_null;
                }
                _ => self.problem(line, format!("{table_name} is LIKE a table this lint does not know to have host: write its columns")),
            }
            return Vec::new();
        }
        let Some(column) = name_of(Some(first)) else {
            return Vec::new();
        };
        self.column(table_name, &column, &el[1..], table, line)
            .into_iter()
            .map(|k| k + 1)
            .collect()
    }

    /// A column definition's attributes (after its name).
    fn column(
        &mut self,
        table_name: &str,
        column: &str,
        attrs: &[Token],
        table: &mut Table,
        line: usize,
    ) -> Vec<usize> {
        let mut used = Vec::new();
        let mut not_null = false;
        for (k, t) in attrs.iter().enumerate() {
            let next = attrs.get(k + 1);
            let prev_not = k > 0 && is_word(attrs.get(k - 1), "not");
            if is_word(Some(t), "null") && prev_not {
                not_null = true;
            }
            let key = if is_word(Some(t), "primary") && is_word(next, "key") {
                not_null = true;
                Some("PRIMARY KEY")
            } else if is_word(Some(t), "unique") {
                Some("UNIQUE")
            } else {
                None
            };
            if let Some(kind) = key {
                used.push(k);
                if column != HOST && Self::ours(table_name) {
                    self.problem(line, format!("{kind} on {table_name} ({column}) without host: Citus requires the distribution column in every unique key"));
                }
            }
        }
        if column == HOST {
            table.has_host = true;
            table.host_not_null = not_null;
        }
        used
    }

    /// PRIMARY KEY/UNIQUE/EXCLUDE/CHECK/FOREIGN KEY, optionally named. Returns the indices
    /// (into `el`) of the key keywords it checked.
    fn table_constraint(&mut self, table_name: &str, el: &[Token], line: usize) -> Vec<usize> {
        let mut i = 0;
        if is_word(el.first(), "constraint") {
            i = 2;
        }
        let ours = Self::ours(table_name);
        if is_word(el.get(i), "primary") || is_word(el.get(i), "unique") {
            let kind = if is_word(el.get(i), "primary") {
                "PRIMARY KEY"
            } else {
                "UNIQUE"
            };
            let used = vec![i];
            let mut j = i + if kind == "UNIQUE" { 1 } else { 2 };
            if is_word(el.get(j), "nulls") {
                j += if is_word(el.get(j + 1), "not") { 3 } else { 2 };
            }
            if is_word(el.get(j), "using") && is_word(el.get(j + 1), "index") {
                // An index made earlier, and checked when it was made.
                return used;
            }
            match key_columns(el, j) {
                Some(cols) if cols.iter().any(|c| c == HOST) || !ours => {}
                Some(cols) => self.problem(line, format!("{kind} on {table_name} ({}) without host: Citus requires the distribution column in every unique key", cols.join(", "))),
                None => self.problem(line, format!("{kind} on {table_name}: no column list this lint can read")),
            }
            return used;
        }
        if is_word(el.get(i), "exclude") {
            let mut j = i + 1;
            if is_word(el.get(j), "using") {
                j += 2;
            }
            let has = matches!(el.get(j).map(|t| &t.tok), Some(Tok::Punct('(')))
                && close_paren(el, j).is_some_and(|end| {
                    split_top(&el[j + 1..end - 1], ',').iter().any(|&(s, e)| {
                        let part = &el[j + 1 + s..j + 1 + e];
                        name_of(part.first()).as_deref() == Some(HOST)
                            && is_word(part.get(1), "with")
                            && matches!(part.get(2).map(|t| &t.tok), Some(Tok::Punct('=')))
                            && part.len() == 3
                    })
                });
            if !has && ours {
                self.problem(line, format!("EXCLUDE on {table_name} without `host WITH =`: Citus requires the distribution column in it"));
            }
            return vec![i];
        }
        // CHECK is fine; FOREIGN KEY is reported by the stream's word scan.
        Vec::new()
    }

    /// CREATE UNIQUE INDEX [CONCURRENTLY] [[IF NOT EXISTS] name] ON [ONLY] table [USING m] (…)
    fn unique_index(&mut self, stmt: &[Token], mut i: usize, line: usize) -> Vec<usize> {
        while i < stmt.len() && !is_word(stmt.get(i), "on") {
            i += 1;
        }
        i += 1;
        if is_word(stmt.get(i), "only") {
            i += 1;
        }
        let Some((table, len)) = qualified_name(&stmt[i.min(stmt.len())..]) else {
            self.problem(line, "a unique index on a table this lint cannot read");
            return Vec::new();
        };
        i += len;
        if is_word(stmt.get(i), "using") {
            i += 2;
        }
        match key_columns(stmt, i) {
            Some(cols) if cols.iter().any(|c| c == HOST) || !Self::ours(&table) => {}
            Some(cols) => self.problem(line, format!("unique index on {table} ({}) without host: Citus requires the distribution column in every unique key", cols.join(", "))),
            None => self.problem(line, format!("unique index on {table}: no column list this lint can read")),
        }
        Vec::new()
    }

    fn trigger(&mut self, stmt: &[Token], i: usize, line: usize) {
        let on = (i..stmt.len()).find(|&k| is_word(stmt.get(k), "on"));
        if let Some((table, _)) = on.and_then(|k| qualified_name(&stmt[k + 1..]))
            && Self::ours(&table)
        {
            self.problem(line, format!("a trigger on {table}: Citus does not run triggers on distributed tables (without citus.enable_unsafe_triggers)"));
        }
    }

    fn alter_table(&mut self, stmt: &[Token], mut i: usize, line: usize) -> Vec<usize> {
        if is_word(stmt.get(i), "if") && is_word(stmt.get(i + 1), "exists") {
            i += 2;
        }
        if is_word(stmt.get(i), "only") {
            i += 1;
        }
        let Some((name, len)) = qualified_name(&stmt[i.min(stmt.len())..]) else {
            return Vec::new();
        };
        i += len;
        if matches!(stmt.get(i).map(|t| &t.tok), Some(Tok::Punct('*'))) {
            i += 1;
        }
        let mut used = Vec::new();
        let actions = &stmt[i.min(stmt.len())..];
        for (s, e) in split_top(actions, ',') {
            let a = &actions[s..e];
            let offset = i + s;
            let aline = a.first().map_or(line, |t| t.line);
            used.extend(
                self.alter_action(&name, a, aline)
                    .into_iter()
                    .map(|k| k + offset),
            );
        }
        used
    }

    fn alter_action(&mut self, name: &str, a: &[Token], line: usize) -> Vec<usize> {
        let word = |k: usize, w: &str| is_word(a.get(k), w);
        let ours = Self::ours(name);
        if word(0, "add") && a.len() == 1 {
            self.problem(line, format!("ALTER TABLE {name} ADD and nothing this lint can read after it (SQL put together from pieces?)"));
            return Vec::new();
        }
        if word(0, "add") {
            let constraint = [
                "constraint",
                "primary",
                "unique",
                "exclude",
                "foreign",
                "check",
            ]
            .iter()
            .any(|w| word(1, w));
            if constraint {
                return self
                    .table_constraint(name, &a[1..], line)
                    .into_iter()
                    .map(|k| k + 1)
                    .collect();
            }
            let mut k = 1;
            if word(k, "column") {
                k += 1;
            }
            if word(k, "if") && word(k + 1, "not") {
                k += 3;
            }
            let Some(column) = name_of(a.get(k)) else {
                return Vec::new();
            };
            let mut table = self.tables.get(name).cloned().unwrap_or_default();
            let used = self.column(name, &column, &a[k + 1..], &mut table, line);
            if column == HOST {
                let t = self.tables.entry(name.to_owned()).or_default();
                // ADD COLUMN IF NOT EXISTS on a table that has host keeps the old column.
                if !t.has_host {
                    t.has_host = true;
                    t.host_not_null = table.host_not_null;
                }
            }
            return used.into_iter().map(|u| u + k + 1).collect();
        }
        let column_at = |k: usize| if word(k, "column") { k + 1 } else { k };
        if word(0, "alter") {
            let k = column_at(1);
            if name_of(a.get(k)).as_deref() == Some(HOST) && ours {
                if word(k + 1, "type") || (word(k + 1, "set") && word(k + 2, "data")) {
                    self.problem(line, format!("{name}: the type of host changes; Citus cannot alter the distribution column's type"));
                } else if word(k + 1, "set") && word(k + 2, "not") {
                    self.tables
                        .entry(name.to_owned())
                        .or_default()
                        .host_not_null = true;
                } else if word(k + 1, "drop") && word(k + 2, "not") {
                    self.tables
                        .entry(name.to_owned())
                        .or_default()
                        .host_not_null = false;
                }
            }
        } else if word(0, "drop") && !word(1, "constraint") {
            let mut k = column_at(1);
            if word(k, "if") && word(k + 1, "exists") {
                k += 2;
            }
            if name_of(a.get(k)).as_deref() == Some(HOST) && ours {
                self.problem(
                    line,
                    format!("{name}: host is dropped; it is the distribution column"),
                );
                if let Some(t) = self.tables.get_mut(name) {
                    t.has_host = false;
                }
            }
        } else if word(0, "rename") {
            if word(1, "to") {
                if let Some(new) = name_of(a.get(2)) {
                    let t = self.tables.remove(name).unwrap_or_default();
                    self.tables.insert(new, t);
                }
            } else if !word(1, "constraint") {
                let k = column_at(1);
                if name_of(a.get(k)).as_deref() == Some(HOST) && ours {
                    self.problem(
                        line,
                        format!("{name}: host is renamed; it is the distribution column"),
                    );
                }
            }
        } else if word(0, "inherit") && ours {
            self.problem(line, format!("{name} INHERITs another table: Citus distributes declarative partitions, not inheritance children"));
        } else if word(0, "attach")
            && word(1, "partition")
            && let Some((part, _)) = qualified_name(&a[2..])
        {
            self.tables.entry(part).or_default().partition_of = Some(name.to_owned());
        }
        Vec::new()
    }

    /// After the last migration: every table of ours has a NOT NULL host, and the five exist.
    fn finish(&mut self) {
        let mut names: Vec<&String> = self.tables.keys().collect();
        names.sort();
        let mut found = Vec::new();
        for name in names {
            let t = &self.tables[name];
            if t.partition_of.is_some() || !Self::ours(name) || is_placeholder(name) {
                continue;
            }
            if !t.has_host {
                found.push(format!(
                    "{name} has no host column: it cannot be distributed by host"
                ));
            } else if !t.host_not_null {
                found.push(format!("{name}.host may be NULL: Citus refuses a NULL distribution column (declare it NOT NULL)"));
            }
        }
        for table in METRICS_TABLES {
            if !self.tables.contains_key(table) {
                found.push(format!(
                    "{table} is not created by the migrations (or is dropped and not made again)"
                ));
            }
        }
        for f in found {
            self.problems
                .push(format!("migrations (after the last): {f}"));
        }
    }
}

/// `name` or `schema.name` at the start of `toks`: the table's name and the tokens it took.
fn qualified_name(toks: &[Token]) -> Option<(String, usize)> {
    let first = name_of(toks.first())?;
    if matches!(toks.get(1).map(|t| &t.tok), Some(Tok::Punct('.')))
        && let Some(second) = name_of(toks.get(2))
    {
        return Some((second, 3));
    }
    Some((first, 1))
}

/// The plain columns of a key list `( … )` at `open`: elements that are a column name,
/// maybe with a collation, an operator class, ASC/DESC or NULLS FIRST/LAST. An expression
/// element yields `(expression)`, never a column.
fn key_columns(toks: &[Token], open: usize) -> Option<Vec<String>> {
    if !matches!(toks.get(open).map(|t| &t.tok), Some(Tok::Punct('('))) {
        return None;
    }
    let end = close_paren(toks, open)?;
    let inner = &toks[open + 1..end - 1];
    let cols = split_top(inner, ',')
        .into_iter()
        .map(|(s, e)| {
            let el = &inner[s..e];
            let plain = el[1..]
                .iter()
                .all(|t| matches!(t.tok, Tok::Word(_) | Tok::Quoted(_)));
            match name_of(el.first()) {
                Some(c) if plain => c,
                _ => "(expression)".to_owned(),
            }
        })
        .collect();
    Some(cols)
}

/// Where a statement that makes keys or tables starts within `stmt` (PL/pgSQL puts
/// `IF … THEN` or a label before it).
fn find_head(stmt: &[Token]) -> Option<usize> {
    (0..stmt.len()).find(|&k| {
        is_word(stmt.get(k), "create")
            || (is_word(stmt.get(k), "alter") && is_word(stmt.get(k + 1), "table"))
            || (is_word(stmt.get(k), "drop") && is_word(stmt.get(k + 1), "table"))
    })
}

/// Lints migration files, given as (file name, SQL) in the order they apply.
fn lint(files: &[(String, String)]) -> Vec<String> {
    let mut lint = Lint {
        tables: HashMap::new(),
        problems: Vec::new(),
        file: String::new(),
    };
    for (name, sql) in files {
        lint.file = name.clone();
        lint.stream(&tokenize(sql, 1));
    }
    lint.finish();
    lint.problems
}

/// `dir`'s `V<n>__*.sql` files, in version order.
fn migrations(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(u64, String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            let version = name.strip_prefix('V')?.split("__").next()?.parse().ok()?;
            let sql = std::fs::read_to_string(&path).ok()?;
            name.ends_with(".sql").then_some((version, name, sql))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, n, s)| (n, s)).collect()
}

#[cfg(test)]
mod tests;
