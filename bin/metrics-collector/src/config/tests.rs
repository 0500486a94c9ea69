use super::*;

fn config(pairs: &[(&str, &str)]) -> Result<Config, Error> {
    from_map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn error_line(pairs: &[(&str, &str)]) -> String {
    config(pairs).unwrap_err().to_string()
}

#[test]
fn defaults_are_the_seed_services() {
    let c = config(&[]).unwrap();
    assert_eq!(c.live_interval, Duration::from_secs(5));
    assert_eq!(c.max_streams, 1024);
    assert_eq!(c.persist_interval, Duration::from_secs(30));
    assert_eq!(c.retention, Duration::from_secs(7 * 86400));
    assert_eq!(c.listen, "0.0.0.0:9100".parse().unwrap());
    assert_eq!(c.disk_path, Path::new("/"));
    assert_eq!(c.gpu, gpu::Choice::Auto);
    assert_eq!(c.roots, probes::Roots::default());
    assert!(!c.host.is_empty());
    let pg = c.postgres.unwrap();
    assert_eq!(
        (
            pg.host.as_str(),
            pg.port,
            pg.user.as_str(),
            pg.dbname.as_str()
        ),
        ("postgres-db", 5432, "arasul", "arasul_db")
    );
}

#[test]
fn decimals_and_overrides_parse() {
    let c = config(&[
        ("METRICS_INTERVAL_LIVE", "0.5"),
        ("METRICS_INTERVAL_PERSIST", "2.5"),
        ("METRICS_RETENTION_DAYS", "0.5"),
        ("METRICS_LISTEN", "[::1]:0"),
        ("METRICS_GPU_BACKEND", "None"),
        ("METRICS_PROCFS", "/host/proc"),
        ("POSTGRES_HOST", ""),
    ])
    .unwrap();
    assert_eq!(c.live_interval, Duration::from_millis(500));
    assert_eq!(c.persist_interval, Duration::from_millis(2500));
    assert_eq!(c.retention, Duration::from_secs(43200));
    assert_eq!(c.listen, "[::1]:0".parse().unwrap());
    assert_eq!(c.gpu, gpu::Choice::None);
    assert_eq!(c.roots.procfs, Path::new("/host/proc"));
    assert!(
        c.postgres.is_none(),
        "an empty POSTGRES_HOST disables persistence"
    );
}

#[test]
fn every_bad_setting_names_variable_value_and_expectation() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("METRICS_INTERVAL_LIVE", "abc")],
            "METRICS_INTERVAL_LIVE=\"abc\": expected seconds >= 0.1",
        ),
        (
            &[("METRICS_INTERVAL_LIVE", "0")],
            "METRICS_INTERVAL_LIVE=\"0\": expected seconds",
        ),
        (
            &[("METRICS_INTERVAL_LIVE", "-5")],
            "METRICS_INTERVAL_LIVE=\"-5\"",
        ),
        (
            &[("METRICS_INTERVAL_LIVE", "NaN")],
            "METRICS_INTERVAL_LIVE=\"NaN\"",
        ),
        (
            &[("METRICS_INTERVAL_PERSIST", "0")],
            "METRICS_INTERVAL_PERSIST=\"0\"",
        ),
        (
            &[
                ("METRICS_INTERVAL_LIVE", "10"),
                ("METRICS_INTERVAL_PERSIST", "5"),
            ],
            "METRICS_INTERVAL_PERSIST=\"5\": expected seconds >= METRICS_INTERVAL_LIVE (10)",
        ),
        (
            &[("METRICS_INTERVAL_LIVE", "60")],
            "METRICS_INTERVAL_PERSIST=\"30\"",
        ),
        (
            &[("METRICS_RETENTION_DAYS", "0")],
            "METRICS_RETENTION_DAYS=\"0\": expected days > 0",
        ),
        (
            &[("METRICS_RETENTION_DAYS", "week")],
            "METRICS_RETENTION_DAYS=\"week\"",
        ),
        (
            &[("METRICS_LISTEN", "localhost")],
            "METRICS_LISTEN=\"localhost\": expected an address and port",
        ),
        (
            &[("METRICS_LISTEN", "0.0.0.0:99999")],
            "METRICS_LISTEN=\"0.0.0.0:99999\"",
        ),
        (
            &[("METRICS_DISK_PATH", "data")],
            "METRICS_DISK_PATH=\"data\": expected an absolute path",
        ),
        (
            &[("METRICS_GPU_BACKEND", "cuda")],
            "METRICS_GPU_BACKEND=\"cuda\": expected auto, nvml, jetson or none",
        ),
        (&[("METRICS_HOST", " ")], "METRICS_HOST=\" \""),
        (&[("METRICS_SYSFS", "sys")], "METRICS_SYSFS=\"sys\""),
        (
            &[("POSTGRES_PORT", "0")],
            "POSTGRES_PORT=\"0\": expected a port number",
        ),
        (&[("POSTGRES_PORT", "five")], "POSTGRES_PORT=\"five\""),
        (
            &[("METRICS_MAX_STREAMS", "0")],
            "METRICS_MAX_STREAMS=\"0\": expected a whole number of streams",
        ),
        (
            &[("METRICS_MAX_STREAMS", "many")],
            "METRICS_MAX_STREAMS=\"many\"",
        ),
    ];
    for (pairs, want) in cases {
        let line = error_line(pairs);
        assert!(line.starts_with(want), "{pairs:?}: {line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
}

#[test]
fn the_password_is_never_shown() {
    let c = config(&[("POSTGRES_PASSWORD", "hunter2")]).unwrap();
    let pg = c.postgres.clone().unwrap();
    assert_eq!(pg.password.expose(), Some("hunter2"));
    assert!(!format!("{c:?}").contains("hunter2"));
    assert_eq!(pg.password.to_string(), "***");
}

#[test]
fn process_environment_wins_over_dotenv() {
    let dir = std::env::temp_dir().join(format!("mc-dotenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(".env");
    std::fs::write(&path, "METRICS_INTERVAL_LIVE=2\nMETRICS_INTERVAL_PERSIST=4\n# a comment\nMETRICS_HOST=from-dotenv\n").unwrap();
    let c = load(
        &path,
        [("METRICS_HOST".to_string(), "from-env".to_string())],
    )
    .unwrap();
    assert_eq!(c.live_interval, Duration::from_secs(2));
    assert_eq!(c.host, "from-env");
    assert!(
        load(&dir.join("missing.env"), []).is_ok(),
        "no .env is fine"
    );
    std::fs::write(&path, "NOT VALID LINE\n").unwrap();
    let err = load(&path, []).unwrap_err().to_string();
    assert!(err.contains(".env"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_malformed_dotenv_line_is_named_never_shown() {
    let dir = testkit::TempDir::new("dotenv-secret");
    let path = dir.0.join(".env");
    std::fs::write(
        &path,
        "# the database\nPOSTGRES_HOST=db\nPOSTGRES_PASSWORD=two words\nMETRICS_HOST=x\n",
    )
    .unwrap();
    let err = load(&path, []).unwrap_err().to_string();
    assert!(!err.contains("two") && !err.contains("words"), "{err}");
    assert!(
        err.contains("line 3") && err.contains("POSTGRES_PASSWORD"),
        "names where and what: {err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn a_bad_value_holding_the_password_shows_stars_instead() {
    let line = error_line(&[
        ("POSTGRES_PASSWORD", "hunter2"),
        ("METRICS_LISTEN", "hunter2:9100"),
    ]);
    assert!(
        line.starts_with("METRICS_LISTEN=\"***:9100\": expected"),
        "{line}"
    );
}

proptest::proptest! {
    /// Whatever `.env` and the environment hold, no error text contains the password (set
    /// in the environment, or on a line of `.env` among the others).
    #[test]
    fn no_error_ever_contains_the_password(
        password in "[a-z]{3}[0-9]{3}[a-z0-9]{0,6}( [0-9]{3}[a-z]{3})?",
        lines in proptest::collection::vec(
            proptest::prop_oneof![
                // No quotes in the random lines: an unterminated one would swallow the
                // lines after it (the password's among them) into another variable.
                "[A-Z_]{1,20}=[ !#-&(-~]{0,30}",
                "[ !#-&(-~]{0,40}",
                // Unparsable when the password holds a space.
                proptest::strategy::Just("POSTGRES_PASSWORD=PW".to_owned()),
                proptest::strategy::Just("METRICS_INTERVAL_LIVE=PW".to_owned()),
                proptest::strategy::Just("export METRICS_LISTEN=PW:1".to_owned()),
            ],
            0..8,
        ),
        env_value in proptest::prop_oneof![
            proptest::strategy::Just("PW".to_owned()),
            "[ -~]{0,12}PW[ -~]{0,12}",
            "[0-9.]{0,5}",
        ],
        env_key in proptest::sample::select(&[
            "METRICS_INTERVAL_LIVE", "METRICS_INTERVAL_PERSIST", "METRICS_LISTEN",
            "METRICS_DISK_PATH", "METRICS_GPU_BACKEND", "METRICS_HOST", "POSTGRES_PORT",
            "METRICS_RETENTION_DAYS", "METRICS_PROCFS", "METRICS_MAX_STREAMS",
        ][..]),
        password_line in proptest::option::of(0usize..8),
    ) {
        let dir = testkit::TempDir::new("dotenv-prop");
        let path = dir.0.join(".env");
        let mut text: Vec<String> = lines.iter().map(|l| l.replace("PW", &password)).collect();
        let mut env = vec![(env_key.to_owned(), env_value.replace("PW", &password))];
        match password_line {
            Some(at) => {
                let at = at.min(text.len());
                text.insert(at, format!("POSTGRES_PASSWORD='{password}'"));
            }
            None => env.push(("POSTGRES_PASSWORD".to_owned(), password.clone())),
        }
        std::fs::write(&path, text.join("\n")).unwrap();
        if let Err(e) = load(&path, env) {
            let shown = e.to_string();
            for part in password.split(' ') {
                proptest::prop_assert!(!shown.contains(part), "{shown:?} shows {part:?}");
            }
        }
    }
}

#[test]
fn the_host_name_comes_from_the_hosts_root_in_a_container() {
    let root = testkit::TempDir::new("rootfs");
    std::fs::create_dir_all(root.0.join("etc")).unwrap();
    std::fs::write(
        root.0.join("etc/hostname"),
        "# set by the installer\n\nedge-07\n",
    )
    .unwrap();
    let c = config(&[("METRICS_ROOTFS", root.0.to_str().unwrap())]).unwrap();
    assert_eq!(c.host, "edge-07");
    let c = config(&[
        ("METRICS_ROOTFS", root.0.to_str().unwrap()),
        ("METRICS_HOST", "named-by-hand"),
    ])
    .unwrap();
    assert_eq!(c.host, "named-by-hand", "METRICS_HOST wins");
    // On the host itself the kernel's name; a root without the file falls back to it.
    let kernel = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert_eq!(config(&[]).unwrap().host, kernel);
    let bare = testkit::TempDir::new("rootfs-bare");
    let c = config(&[("METRICS_ROOTFS", bare.0.to_str().unwrap())]).unwrap();
    assert_eq!(c.host, kernel);
}

// ---- Defects fixed with the property tests below ---------------------------------------

/// The raw layer (the `config` crate) read every variable of the process: one named
/// `TOOL[4294967295]` (any name a shell exports) was taken for an array index, and start-up
/// died allocating 412 GB; one named `METRICS_LISTEN.note` turned `METRICS_LISTEN` into a
/// table, so the setting was ignored, or not, depending on a HashMap's order. Only our
/// variables are read now.
#[test]
fn unrelated_variables_neither_stop_start_up_nor_change_a_setting() {
    for _ in 0..8 {
        let c = config(&[
            ("METRICS_LISTEN", "127.0.0.1:1"),
            ("metrics_listen.note", "x"),
            ("METRICS_LISTEN[0]", "10.0.0.1:2"),
            ("TOOL[4294967295]", "x"),
            ("TOOL[-9999999999]", "x"),
            ("BASH_FUNC_x%%", "() {  echo; }"),
            ("", "x"),
            ("a..b", ""),
        ])
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:1".parse().unwrap());
    }
}

#[test]
fn the_process_environment_wins_whatever_case_dotenv_writes_a_name_in() {
    let dir = testkit::TempDir::new("dotenv-case");
    let path = dir.0.join(".env");
    std::fs::write(&path, "metrics_host=from-dotenv\nMetrics_Interval_Live=2\n").unwrap();
    for _ in 0..8 {
        let c = load(&path, [("METRICS_HOST".into(), "from-env".into())]).unwrap();
        assert_eq!(c.host, "from-env");
        assert_eq!(
            c.live_interval,
            Duration::from_secs(2),
            "still read from .env"
        );
    }
    // Two spellings in one source: the exact name wins.
    let c = config(&[("METRICS_HOST", "exact"), ("metrics_host", "lower")]).unwrap();
    assert_eq!(c.host, "exact");
}

/// A quote left open swallowed the rest of the file into one value spanning lines, which no
/// single line contains: the error said "line 0".
#[test]
fn a_quote_left_open_is_named_by_the_line_it_opens_on() {
    let err = parse_dotenv(
        ".env",
        b"A=1\nPOSTGRES_PASSWORD=\"open secret\nMETRICS_HOST=x\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        ".env: line 2 (POSTGRES_PASSWORD): cannot be parsed (quote a value that holds spaces, quotes or `#`)"
    );
}

/// Bytes that are not UTF-8 were "cannot read it: invalid data", without the line.
#[test]
fn a_dotenv_line_that_is_not_utf8_is_named_never_shown() {
    let err = parse_dotenv(".env", b"METRICS_HOST=a\nPOSTGRES_PASSWORD=caf\xe9\n")
        .unwrap_err()
        .to_string();
    assert_eq!(err, ".env: line 2 (POSTGRES_PASSWORD): is not UTF-8");
}

/// A value of any length was echoed whole into the one line.
#[test]
fn a_long_bad_value_is_cut_in_the_error_line() {
    let long = "x".repeat(10_000);
    let line = error_line(&[("METRICS_LISTEN", &long)]);
    assert!(
        line.starts_with("METRICS_LISTEN=\"xxxxxxxx") && line.contains("… (10000 bytes): expected"),
        "{line}"
    );
    assert!(line.len() < 200, "{} bytes", line.len());
    // Masked first, then cut: a password past the cut is not half shown.
    let secret = format!("{}hunter2", "y".repeat(60));
    let line = error_line(&[
        ("POSTGRES_PASSWORD", &secret),
        ("METRICS_LISTEN", &format!("{secret}:1")),
    ]);
    assert!(line.starts_with("METRICS_LISTEN=\"***:1\""), "{line}");
}

// ---- Property tests: every variable and the .env file ----------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    use testkit::proptest_config as runner;

    /// Our names, from the table `--help` prints.
    fn names() -> Vec<&'static str> {
        SETTINGS.iter().map(|(n, _, _)| *n).collect()
    }

    /// What someone may write as a value, valid or not.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[-+0-9.eE ]{0,12}",
            "[0-9a-f:.\\[\\]]{0,24}",
            prop::sample::select(
                &[
                    "NaN",
                    "inf",
                    "-inf",
                    "1e308",
                    "-0",
                    "0",
                    "0.1",
                    "86400",
                    "86400.1",
                    "65535",
                    "65536",
                    "1000000",
                    "1000001",
                    "18446744073709551616",
                    "/",
                    "relative",
                    "auto",
                    "NVML",
                    " ",
                    "",
                    "\0",
                    "\r\n",
                    "[::]:9100",
                    "0.0.0.0:0",
                ][..]
            )
            .prop_map(str::to_owned),
            (0usize..5000).prop_map(|n| "9".repeat(n)),
        ]
    }

    fn settings(pairs: &[(String, String)]) -> Result<Config, Error> {
        from_map(pairs.iter().cloned().collect())
    }

    proptest! {
        #![proptest_config(runner(256))]

        #[test]
        fn no_value_of_any_variable_panics_and_a_refusal_names_it(
            name in prop::sample::select(names()),
            value in value(),
        ) {
            // The host name falls back to this machine's: no root given leaves it alone.
            let pairs = [(name.to_owned(), value.clone())];
            if let Err(e) = settings(&pairs) {
                let line = e.to_string();
                // A live interval above the persist default is refused as the persist one.
                let named = line.starts_with(&format!("{name}=")) || line.starts_with("METRICS_INTERVAL_PERSIST=");
                prop_assert!(named, "{line}");
                prop_assert!(!line.contains('\n') && line.len() < 300, "{line:?}");
                let head: String = value.chars().take(20).collect();
                let head = format!("{head:?}");
                prop_assert!(
                    line.contains(head.trim_end_matches('"')) || line.starts_with("METRICS_INTERVAL_PERSIST="),
                    "{line} lacks {head}"
                );
            }
        }

        #[test]
        fn variables_that_are_not_ours_change_nothing(
            others in prop::collection::vec((any::<String>(), any::<String>()), 0..8),
            shaped in prop::collection::vec(
                ("(METRICS_LISTEN|metrics_host|X)(\\.[a-z]{1,4}|\\[-?[0-9]{1,12}\\])", "[a-z0-9]{0,4}"),
                0..4,
            ),
        ) {
            let ours = [
                ("METRICS_LISTEN".to_owned(), "127.0.0.1:9200".to_owned()),
                ("METRICS_HOST".to_owned(), "edge-01".to_owned()),
                ("POSTGRES_PORT".to_owned(), "6543".to_owned()),
            ];
            let known = names();
            let mut all: Vec<(String, String)> = others
                .into_iter()
                .chain(shaped)
                .filter(|(k, _)| !known.iter().any(|n| n.eq_ignore_ascii_case(k)))
                .collect();
            all.extend(ours.iter().cloned());
            let alone = format!("{:?}", settings(&ours));
            prop_assert_eq!(format!("{:?}", settings(&all)), alone);
        }

        #[test]
        fn intervals_written_in_seconds_read_back(
            live_ms in 100u64..=86_400_000,
            extra_ms in 0u64..=86_400_000,
        ) {
            let persist_ms = (live_ms + extra_ms).min(86_400_000);
            let s = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
            let c = config(&[("METRICS_INTERVAL_LIVE", &s(live_ms)), ("METRICS_INTERVAL_PERSIST", &s(persist_ms))]).unwrap();
            prop_assert_eq!(c.live_interval.as_millis(), u128::from(live_ms));
            prop_assert_eq!(c.persist_interval.as_millis(), u128::from(persist_ms));
        }

        #[test]
        fn a_persist_interval_below_the_live_one_is_refused(live_ms in 101u64..=86_400_000, below in 1u64..100) {
            let persist_ms = live_ms - below.min(live_ms - 100);
            prop_assume!(persist_ms < live_ms);
            let s = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
            let line = error_line(&[("METRICS_INTERVAL_LIVE", &s(live_ms)), ("METRICS_INTERVAL_PERSIST", &s(persist_ms))]);
            let start = format!("METRICS_INTERVAL_PERSIST=\"{}\": expected seconds >= METRICS_INTERVAL_LIVE", s(persist_ms));
            prop_assert!(line.starts_with(&start), "{line}");
        }

        #[test]
        fn numbers_and_addresses_written_read_back(
            port in 1u16..=65535,
            streams in 1usize..=1_000_000,
            days in 1u32..=3650,
            // No flow label or scope: what an address and port written as text can say.
            listen in (any::<std::net::IpAddr>(), any::<u16>()).prop_map(std::net::SocketAddr::from),
            backend in prop::sample::select(&["auto", "nvml", "jetson", "none", "AUTO", "Jetson", "NONE"][..]),
            path in prop::collection::vec("[a-z0-9 ._-]{1,8}", 0..4),
        ) {
            let disk = format!("/{}", path.join("/"));
            let c = config(&[
                ("POSTGRES_PORT", &format!(" {port} ")),
                ("METRICS_MAX_STREAMS", &streams.to_string()),
                ("METRICS_RETENTION_DAYS", &days.to_string()),
                ("METRICS_LISTEN", &listen.to_string()),
                ("METRICS_GPU_BACKEND", backend),
                ("METRICS_DISK_PATH", &disk),
            ]).unwrap();
            prop_assert_eq!(c.postgres.map(|p| p.port), Some(port));
            prop_assert_eq!(c.max_streams, streams);
            prop_assert_eq!(c.retention, Duration::from_secs(u64::from(days) * 86_400));
            prop_assert_eq!(c.listen, listen);
            prop_assert_eq!(c.gpu, backend.parse().unwrap());
            prop_assert_eq!(c.disk_path, PathBuf::from(disk.trim()));
        }

        #[test]
        fn no_dotenv_bytes_make_the_parser_panic_and_a_refusal_names_a_line(
            content in prop_oneof![
                any::<Vec<u8>>(),
                prop::collection::vec(
                    "(export )?[A-Z_]{1,12}[ ]?=[ ]?['\"]?[ -~]{0,16}['\"]?|#[ -~]{0,10}|[ -~]{0,20}",
                    0..8,
                )
                .prop_map(|l| l.join("\n").into_bytes()),
            ],
        ) {
            let lines = content.split(|b| *b == b'\n').count();
            match parse_dotenv(".env", &content) {
                Ok(_) => {}
                Err(Error::DotEnvLine { line, .. }) => {
                    prop_assert!((1..=lines).contains(&line), "line {line} of {lines}");
                }
                Err(e) => prop_assert!(e.to_string().starts_with(".env: "), "{e}"),
            }
        }

        #[test]
        fn a_dotenv_written_by_hand_reads_back(
            entries in prop::collection::vec(
                (
                    prop::sample::select(names()),
                    prop_oneof![
                        "[A-Za-z0-9_./:-]{0,16}".prop_map(|v| (v.clone(), v)),
                        // Inside single quotes dotenvy still reads a backslash as an escape.
                        "[ -&(-\\[\\]-~]{0,16}".prop_map(|v| (format!("'{v}'"), v)),
                    ],
                    any::<bool>(),
                ),
                0..8,
            ),
            comments in prop::collection::vec("(#[ -~]{0,12})?", 0..3),
            crlf in any::<bool>(),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = comments.join(end);
            text.push_str(end);
            let mut want = HashMap::new();
            for (name, (written, read), export) in &entries {
                let export = if *export { "export " } else { "" };
                text.push_str(&format!("{export}{name}={written}{end}"));
                want.insert((*name).to_owned(), read.clone());
            }
            let got = parse_dotenv(".env", text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(got, want, "{:?}", text);
        }
    }
}
