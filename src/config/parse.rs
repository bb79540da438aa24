//! nginx configuration syntax: tokens, blocks and `include`, producing a tree of
//! [`Directive`]s that still knows nothing about what any directive means.
//!
//! The rules follow nginx's `ngx_conf_read_token`: whitespace separates words, `;` ends a
//! directive, `{`/`}` open and close blocks, `#` starts a comment at the beginning of a
//! word, `"`/`'` quote, a backslash escapes the next character, and `${name}` keeps its
//! braces inside a word. `include` is expanded here (globs sorted, as nginx does) so every
//! later stage sees one tree whose directives still carry their own file and line.
//!
//! Syntax errors do not stop the parse: the parser records them and resynchronises at the
//! next `;` or `}`, so `raftgate -t` can report every problem at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Diagnostics;

/// One word of a directive, with whether it was quoted (nginx treats `"a b"` as one word
/// and some directives, such as `if`, need to know a `(` was literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub value: String,
    pub quoted: bool,
}

#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<Word>,
    /// `Some` for `name args { ... }`.
    pub block: Option<Vec<Directive>>,
    pub file: Arc<str>,
    pub line: u32,
}

impl Directive {
    pub fn arg(&self, i: usize) -> &str {
        self.args.get(i).map(|w| w.value.as_str()).unwrap_or("")
    }

    /// `FILE:LINE`, the prefix of every message about this directive.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(Word),
    Semi,
    Open,
    Close,
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src: src.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Next token and the line it starts on; `Err` carries a message and the line.
    fn next(&mut self) -> Option<Result<(Tok, u32), (String, u32)>> {
        loop {
            match self.peek()? {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    self.bump();
                }
                b'#' => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        let line = self.line;
        let c = self.peek()?;
        match c {
            b';' => {
                self.bump();
                Some(Ok((Tok::Semi, line)))
            }
            b'{' => {
                self.bump();
                Some(Ok((Tok::Open, line)))
            }
            b'}' => {
                self.bump();
                Some(Ok((Tok::Close, line)))
            }
            b'"' | b'\'' => Some(self.quoted(c, line)),
            _ => Some(self.bare(line)),
        }
    }

    fn quoted(&mut self, q: u8, line: u32) -> Result<(Tok, u32), (String, u32)> {
        self.bump();
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => {
                    return Err((
                        "unexpected end of file, expecting closing quote".into(),
                        line,
                    ))
                }
                Some(b'\\') => match self.bump() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(c) if c == q || c == b'\\' => out.push(c),
                    // nginx keeps unknown escapes as written, so regexes like "\d" survive.
                    Some(c) => {
                        out.push(b'\\');
                        out.push(c);
                    }
                    None => {
                        return Err((
                            "unexpected end of file, expecting closing quote".into(),
                            line,
                        ))
                    }
                },
                Some(c) if c == q => break,
                Some(c) => out.push(c),
            }
        }
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' | b'}' | b')') => {}
            Some(c) => {
                return Err((
                    format!("unexpected \"{}\" after quoted string", c as char),
                    self.line,
                ));
            }
        }
        Ok((
            Tok::Word(Word {
                value: String::from_utf8_lossy(&out).into_owned(),
                quoted: true,
            }),
            line,
        ))
    }

    fn bare(&mut self, line: u32) -> Result<(Tok, u32), (String, u32)> {
        let mut out = Vec::new();
        let mut in_var_brace = false;
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b';' => break,
                b'{' if out.last() == Some(&b'$') => {
                    in_var_brace = true;
                    out.push(c);
                    self.bump();
                }
                b'}' if in_var_brace => {
                    in_var_brace = false;
                    out.push(c);
                    self.bump();
                }
                b'{' | b'}' => break,
                b'\\' => {
                    self.bump();
                    match self.bump() {
                        Some(b'n') => out.push(b'\n'),
                        Some(b't') => out.push(b'\t'),
                        Some(b'r') => out.push(b'\r'),
                        Some(c @ (b'"' | b'\'' | b'\\' | b';' | b'{' | b'}' | b' ' | b'$')) => {
                            out.push(c)
                        }
                        Some(c) => {
                            out.push(b'\\');
                            out.push(c);
                        }
                        None => break,
                    }
                }
                _ => {
                    out.push(c);
                    self.bump();
                }
            }
        }
        Ok((
            Tok::Word(Word {
                value: String::from_utf8_lossy(&out).into_owned(),
                quoted: false,
            }),
            line,
        ))
    }
}

/// Reads configuration files, expanding `include`. `prefix` resolves relative include
/// paths (nginx resolves them against the directory of the main configuration file).
pub struct Parser<'d> {
    prefix: PathBuf,
    diags: &'d mut Diagnostics,
    /// Every file read, in order; a reload re-reads all of them.
    pub files: Vec<PathBuf>,
    depth: usize,
}

const MAX_INCLUDE_DEPTH: usize = 32;

impl<'d> Parser<'d> {
    pub fn new(prefix: PathBuf, diags: &'d mut Diagnostics) -> Self {
        Parser {
            prefix,
            diags,
            files: Vec::new(),
            depth: 0,
        }
    }

    pub fn parse_file(&mut self, path: &Path) -> Vec<Directive> {
        match std::fs::read_to_string(path) {
            Ok(text) => self.parse_str(&text, &path.display().to_string()),
            Err(e) => {
                self.diags
                    .error_plain(format!("open() \"{}\" failed: {}", path.display(), e));
                Vec::new()
            }
        }
    }

    /// Parses text as if it were the file `name`.
    pub fn parse_str(&mut self, text: &str, name: &str) -> Vec<Directive> {
        self.files.push(PathBuf::from(name));
        let file: Arc<str> = Arc::from(name);
        let mut lex = Lexer::new(text);
        self.block(&mut lex, &file, 0).0
    }

    fn block(
        &mut self,
        lex: &mut Lexer<'_>,
        file: &Arc<str>,
        depth: usize,
    ) -> (Vec<Directive>, End) {
        let mut out = Vec::new();
        let mut words: Vec<Word> = Vec::new();
        let mut start = 0;
        loop {
            let tok = match lex.next() {
                None => {
                    if !words.is_empty() {
                        self.diags.error(
                            file,
                            lex.line,
                            "unexpected end of file, expecting \";\" or \"}\"",
                        );
                    }
                    return (out, End::Eof);
                }
                Some(Err((msg, line))) => {
                    self.diags.error(file, line, &msg);
                    words.clear();
                    // Resynchronise at the end of this statement.
                    loop {
                        match lex.next() {
                            None => return (out, End::Eof),
                            Some(Ok((Tok::Semi, _))) | Some(Err(_)) => break,
                            Some(Ok((Tok::Close, _))) if depth > 0 => return (out, End::Close),
                            Some(Ok((Tok::Close, _))) => break,
                            _ => {}
                        }
                    }
                    continue;
                }
                Some(Ok(t)) => t,
            };
            match tok {
                (Tok::Word(w), line) => {
                    if words.is_empty() {
                        start = line;
                    }
                    words.push(w);
                }
                (Tok::Semi, line) => {
                    if words.is_empty() {
                        self.diags.error(file, line, "unexpected \";\"");
                        continue;
                    }
                    let d = make(std::mem::take(&mut words), None, file, start);
                    if d.name == "include" {
                        out.extend(self.include(&d));
                    } else {
                        out.push(d);
                    }
                }
                (Tok::Open, line) => {
                    if words.is_empty() {
                        self.diags.error(file, line, "unexpected \"{\"");
                    }
                    let (children, end) = self.block(lex, file, depth + 1);
                    if let End::Eof = end {
                        self.diags
                            .error(file, lex.line, "unexpected end of file, expecting \"}\"");
                    }
                    if !words.is_empty() {
                        out.push(make(
                            std::mem::take(&mut words),
                            Some(children),
                            file,
                            start,
                        ));
                    }
                    if let End::Eof = end {
                        return (out, End::Eof);
                    }
                }
                (Tok::Close, line) => {
                    if !words.is_empty() || depth == 0 {
                        self.diags.error(file, line, "unexpected \"}\"");
                        words.clear();
                    }
                    if depth == 0 {
                        // A stray `}` at the top: report it and keep reading.
                        continue;
                    }
                    return (out, End::Close);
                }
            }
        }
    }

    fn include(&mut self, d: &Directive) -> Vec<Directive> {
        if d.args.len() != 1 {
            self.diags.error(
                &d.file,
                d.line,
                "invalid number of arguments in \"include\" directive",
            );
            return Vec::new();
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                &d.file,
                d.line,
                "include nesting is too deep (recursive include?)",
            );
            return Vec::new();
        }
        let pattern = d.arg(0);
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            self.prefix.join(pattern)
        };
        let is_glob = pattern.contains(['*', '?', '[']);
        let mut paths = Vec::new();
        if is_glob {
            match glob::glob(&full.to_string_lossy()) {
                Ok(iter) => {
                    for p in iter.flatten() {
                        if p.is_file() {
                            paths.push(p);
                        }
                    }
                }
                Err(e) => {
                    self.diags.error(
                        &d.file,
                        d.line,
                        &format!("invalid include pattern \"{pattern}\": {e}"),
                    );
                    return Vec::new();
                }
            }
            paths.sort();
        } else {
            paths.push(full);
        }
        let mut out = Vec::new();
        for p in paths {
            match std::fs::read_to_string(&p) {
                Ok(text) => {
                    self.depth += 1;
                    out.extend(self.parse_str(&text, &p.display().to_string()));
                    self.depth -= 1;
                }
                Err(e) => self.diags.error(
                    &d.file,
                    d.line,
                    &format!("open() \"{}\" failed: {}", p.display(), e),
                ),
            }
        }
        out
    }
}

enum End {
    Eof,
    Close,
}

fn make(
    mut words: Vec<Word>,
    block: Option<Vec<Directive>>,
    file: &Arc<str>,
    line: u32,
) -> Directive {
    let name = words.remove(0).value;
    Directive {
        name,
        args: words,
        block,
        file: file.clone(),
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Directive>, Vec<String>) {
        let mut diags = Diagnostics::default();
        let list = Parser::new(PathBuf::from("/nonexistent"), &mut diags).parse_str(text, "t.conf");
        (list, diags.errors().to_vec())
    }

    #[test]
    fn words_quotes_escapes_and_comments() {
        let (list, errs) = parse(
            "a 1 \"two words\" 'single \\' q' \\;x; # comment\nb ${var}x \"re{3}\" {\n c;\n}\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(list.len(), 2);
        let a: Vec<&str> = list[0].args.iter().map(|w| w.value.as_str()).collect();
        assert_eq!(a, ["1", "two words", "single ' q", ";x"]);
        assert!(list[0].args[1].quoted && !list[0].args[0].quoted);
        assert_eq!(list[1].arg(0), "${var}x");
        assert_eq!(list[1].arg(1), "re{3}");
        let block = list[1].block.as_ref().expect("block");
        assert_eq!(block[0].name, "c");
        assert_eq!(block[0].line, 3);
    }

    #[test]
    fn errors_carry_file_and_line_and_parsing_continues() {
        let (list, errs) = parse("a \"x\"y;\nb;\n}\nc \"open\n");
        assert_eq!(
            list.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert!(
            errs[0].starts_with("t.conf:1: unexpected \"y\""),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("t.conf:3: unexpected \"}\"")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.contains("closing quote")), "{errs:?}");
    }

    #[test]
    fn unclosed_block_is_reported() {
        let (_, errs) = parse("http {\n server {\n");
        assert!(
            errs.iter().any(|e| e.contains("expecting \"}\"")),
            "{errs:?}"
        );
    }

    #[test]
    fn include_with_glob_is_sorted_and_keeps_file_names() {
        let dir = std::env::temp_dir().join(format!("rg-include-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
        std::fs::write(dir.join("conf.d/b.conf"), "second;\n").expect("write");
        std::fs::write(dir.join("conf.d/a.conf"), "\nfirst;\n").expect("write");
        let mut diags = Diagnostics::default();
        let list = Parser::new(dir.clone(), &mut diags).parse_str(
            "include conf.d/*.conf;\nmissing;\ninclude nope.conf;\n",
            "main.conf",
        );
        let names: Vec<&str> = list.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["first", "second", "missing"]);
        assert!(list[0].file.ends_with("conf.d/a.conf"));
        assert_eq!(list[0].line, 2);
        assert!(
            diags.errors()[0].starts_with("main.conf:3: open()"),
            "{:?}",
            diags.errors()
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
