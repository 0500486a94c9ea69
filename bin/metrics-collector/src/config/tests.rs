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
