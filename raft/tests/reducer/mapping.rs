use raftgate_raft::{HttpOnlyField, ImmutableField, KeyvalFormat, Rejected, UpstreamRef, ZoneRef};

#[test]
fn every_rejection_maps_to_an_nginx_status_and_code() {
    use Rejected::*;
    let cases: Vec<(Rejected, u16, &str, &str)> = vec![
        (
            UnknownZone {
                zone: ZoneRef::http("one"),
            },
            404,
            "KeyvalNotFound",
            "keyval \"one\" not found",
        ),
        (
            KeyExists { key: "a".into() },
            409,
            "KeyvalKeyExists",
            "key \"a\" already exists",
        ),
        (
            KeyNotFound { key: "a".into() },
            404,
            "KeyvalKeyNotFound",
            "key \"a\" not found",
        ),
        (
            KeyvalFormat(self::KeyvalFormat::OnlyOneKeyAdded),
            400,
            "KeyvalFormatError",
            "only one key can be added",
        ),
        (
            KeyvalFormat(self::KeyvalFormat::BadIpKey),
            400,
            "KeyvalFormatError",
            "invalid key format",
        ),
        (
            ZoneFull {
                zone: ZoneRef::http("one"),
            },
            400,
            "KeyvalOutOfMemory",
            "keyval \"one\" memory exhausted",
        ),
        (
            UnknownStickyZone { zone: "s".into() },
            404,
            "SlabNotFound",
            "sticky zone \"s\" not found",
        ),
        (
            StickyZoneTooSmall { zone: "s".into() },
            400,
            "StickyOutOfMemory",
            "sticky zone \"s\" is too small for the session",
        ),
        (
            UnknownUpstream {
                upstream: UpstreamRef::http("u"),
            },
            404,
            "UpstreamNotFound",
            "upstream not found: \"u\"",
        ),
        (
            ServerNotFound { id: 3 },
            404,
            "UpstreamServerNotFound",
            "server \"3\" not found",
        ),
        (
            ServerExists {
                server: "a:80".into(),
            },
            409,
            "EntryExists",
            "server \"a:80\" already exists",
        ),
        (NoBackup, 400, "UpstreamNoBackup", "upstream has no backup"),
        (
            UpstreamOutOfMemory,
            400,
            "UpstreamOutOfMemory",
            "upstream memory exhausted",
        ),
        (
            Immutable {
                field: ImmutableField::Backup,
            },
            400,
            "UpstreamConfFormatError",
            "\"backup\" cannot be changed",
        ),
        (
            HttpOnly {
                field: HttpOnlyField::Drain,
            },
            400,
            "UpstreamConfFormatError",
            "unknown parameter \"drain\"",
        ),
        (
            UpstreamBadWeight,
            400,
            "UpstreamBadWeight",
            "invalid \"weight\"",
        ),
        (
            UpstreamBadMaxConns,
            400,
            "UpstreamBadMaxConns",
            "invalid \"max_conns\"",
        ),
        (
            UpstreamBadMaxFails,
            400,
            "UpstreamBadMaxFails",
            "invalid \"max_fails\"",
        ),
        (
            UpstreamBadFailTimeout,
            400,
            "UpstreamBadFailTimeout",
            "invalid \"fail_timeout\"",
        ),
        (
            UpstreamBadSlowStart,
            400,
            "UpstreamBadSlowStart",
            "invalid \"slow_start\"",
        ),
        (
            UpstreamBadRoute,
            400,
            "UpstreamBadRoute",
            "invalid \"route\"",
        ),
        (
            UpstreamBadAddress { server: "x".into() },
            400,
            "UpstreamBadAddress",
            "invalid address \"x\"",
        ),
        (
            UpstreamBadService,
            400,
            "UpstreamBadService",
            "invalid \"service\"",
        ),
        (
            StaleRequest {
                client: 1,
                serial: 2,
            },
            504,
            "WriteOutcomeUnknown",
            "request retried too late: its outcome can no longer be known",
        ),
    ];
    for (r, status, code, text) in cases {
        assert_eq!(r.api_error(), (status, code), "{r:?}");
        assert_eq!(r.to_string(), text, "{r:?}");
    }
}
