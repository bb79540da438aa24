//! The `stream {}` block (TCP/UDP, `ngx_stream_*` modules).
//!
//! So far it holds what the replicated state needs from it: `keyval_zone` declarations,
//! whose zones the API serves under `/api/2/stream/keyvals/`. Its presence is what makes
//! the API's `/stream/` endpoints answer instead of 404 `StreamNotConfigured`, as in
//! NGINX Plus. Stream servers and proxying (`server`, `listen`, `proxy_pass`, upstreams)
//! are not implemented yet: those directives are refused as unknown here, never ignored.

use crate::config::main::MainConf;
use crate::config::{ctx, walk, Args, Cx, Directive, Frame, Handler, Spec};
use crate::keyval::ZoneDecl;

/// What a `stream {}` block declared.
#[derive(Debug, Clone, Default)]
pub struct StreamConf {
    pub keyval_zones: Vec<ZoneDecl>,
    /// `keyval` lines, checked against `keyval_zones` once the block is read.
    pub keyval_refs: Vec<crate::keyval::ZoneUse>,
}

#[rustfmt::skip]
pub static DIRECTIVES: &[Spec] = &[
    Spec { name: "stream", contexts: ctx::MAIN, args: Args::Exactly(0), block: true, handler: Handler::Frame(stream) },
];

fn stream(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let Frame::Main(m) = frame else {
        return Err("\"stream\" directive is not allowed here".into());
    };
    let m: &mut MainConf = m;
    if m.stream.is_some() {
        return Err("\"stream\" directive is duplicate".into());
    }
    let mut conf = StreamConf::default();
    walk(
        cx,
        &mut Frame::Stream(&mut conf),
        d.block.as_deref().unwrap_or_default(),
    );
    crate::keyval::check_uses(cx, &conf.keyval_refs, &conf.keyval_zones);
    m.stream = Some(conf);
    Ok(())
}

#[cfg(test)]
mod tests {
    fn load(text: &str) -> Result<crate::config::Config, Vec<String>> {
        crate::config::load_str(text, "s.conf", std::env::temp_dir())
    }

    const HTTP: &str = "events {}\nhttp {\n keyval_zone zone=h:1m;\n server { listen 127.0.0.1:0; location /api { api; } }\n}\n";

    #[test]
    fn a_stream_block_declares_stream_zones_and_opens_the_stream_endpoints() {
        let c = load(&format!(
            "{HTTP}stream {{\n keyval_zone zone=s:1m timeout=5s;\n}}\n"
        ))
        .expect("loads");
        let http = c.http.as_ref().expect("http");
        assert!(http.stream_configured);
        let zones: Vec<(String, raftgate_raft::Kind)> = c
            .keyval_zones()
            .into_iter()
            .map(|z| (z.name, z.kind))
            .collect();
        assert_eq!(
            zones,
            vec![
                ("h".to_string(), raftgate_raft::Kind::Http),
                ("s".to_string(), raftgate_raft::Kind::Stream)
            ]
        );
        let c = load(HTTP).expect("loads");
        assert!(!c.http.as_ref().expect("http").stream_configured);
    }

    #[test]
    fn stream_directives_not_implemented_are_errors_with_their_line() {
        let errs = load("events {}\nstream {\n keyval_zone zone=s:1m;\n server { listen 12345; }\n}\nstream {}\n")
            .expect_err("refused");
        assert!(errs.iter().any(|e| e.starts_with("s.conf:4:")), "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("s.conf:6:") && e.contains("duplicate")),
            "{errs:?}"
        );
        let errs =
            load("events {}\nstream {\n keyval_zone zone=s:1m;\n keyval_zone zone=s:1m;\n}\n")
                .expect_err("dup");
        assert!(
            errs[0].starts_with("s.conf:4:") && errs[0].contains("duplicate zone"),
            "{errs:?}"
        );
    }
}
