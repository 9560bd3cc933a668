use figment::Jail;

use super::*;

/// Runs `f` in a figment jail (temporary working directory, environment restored afterwards)
/// with every variable cleared, so the host's `CASEBRIDGE_*` settings cannot leak into tests.
// `Jail::expect_with` dictates the closure's `figment::Result`; the lint is about its size.
#[allow(clippy::result_large_err)]
fn jail(f: impl FnOnce(&mut Jail)) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        f(jail);
        Ok(())
    });
}

fn load_err(file: Option<&Path>) -> String {
    match Config::load(file) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults() {
    jail(|_| {
        let config = Config::load(None).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url, None);
        assert!(config.master_key.is_none());
        assert!(config.old_master_keys.is_empty());
        assert_eq!(config.public_url, None);
        assert!(config.allow_private_networks.is_empty());
        assert!(!config.allow_http);
        assert_eq!(config.log_format, LogFormat::Auto);
        assert_eq!(config.log_filter, "info");
        assert_eq!(config.body_limit_bytes, 1_048_576);
        assert_eq!(config.db_max_connections, 16);
        assert_eq!(config.worker_concurrency, 16);
        assert_eq!(config.job_lease_secs, 60);
        assert_eq!(config.shutdown_grace_secs, 20);
        assert_eq!(
            config.effective_database_url(),
            "sqlite://./data/casebridge.db?mode=rwc"
        );
        assert_eq!(config.master_key_path(), PathBuf::from("./data/master.key"));
    });
}

#[test]
fn file_then_env_override() {
    jail(|jail| {
        jail.create_file(
            "casebridge.toml",
            r#"
                listen = "0.0.0.0:9000"
                data_dir = "/var/lib/casebridge"
                database_url = "postgres://cb@db/casebridge"
                public_url = "https://hooks.example.com/"
                allow_private_networks = ["10.0.0.0/8", "fd00::/8"]
                allow_http = true
                log_format = "pretty"
                log_filter = "debug"
                worker_concurrency = 4
                job_lease_secs = 30
            "#,
        )
        .unwrap();
        jail.set_env("CASEBRIDGE_LISTEN", "127.0.0.1:7000");
        jail.set_env("CASEBRIDGE_LOG_FORMAT", "json");
        jail.set_env("CASEBRIDGE_LOG", "warn,casebridge=trace");
        jail.set_env("CASEBRIDGE_WORKER_CONCURRENCY", "32");

        let config = Config::load(Some(Path::new("casebridge.toml"))).unwrap();
        // Environment wins where set...
        assert_eq!(config.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.log_filter, "warn,casebridge=trace");
        assert_eq!(config.worker_concurrency, 32);
        // ...the file where not...
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/casebridge"));
        assert_eq!(
            config.effective_database_url(),
            "postgres://cb@db/casebridge"
        );
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://hooks.example.com")
        );
        assert_eq!(
            config.allow_private_networks,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "fd00::/8".parse().unwrap()
            ]
        );
        assert!(config.allow_http);
        assert_eq!(config.job_lease_secs, 30);
        assert_eq!(
            config.master_key_path(),
            PathBuf::from("/var/lib/casebridge/master.key")
        );
        // ...and defaults for the rest.
        assert_eq!(config.db_max_connections, 16);
    });
}

#[test]
fn comma_separated_lists_from_env() {
    jail(|jail| {
        jail.set_env(
            "CASEBRIDGE_ALLOW_PRIVATE_NETWORKS",
            " 10.0.0.0/8, 192.168.1.7 ,,fd00::/8,172.16.5.4/12",
        );
        jail.set_env("CASEBRIDGE_OLD_MASTER_KEYS", "b2xkMQ==, b2xkMg==");
        let config = Config::load(None).unwrap();
        let expected: Vec<IpNet> = ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "172.16.0.0/12"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(config.allow_private_networks, expected);
        let old: Vec<&str> = config
            .old_master_keys
            .iter()
            .map(|k| k.expose_secret())
            .collect();
        assert_eq!(old, ["b2xkMQ==", "b2xkMg=="]);
    });
}

#[test]
fn single_cidr_and_empty_list_from_env() {
    jail(|jail| {
        jail.set_env("CASEBRIDGE_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8");
        jail.set_env("CASEBRIDGE_OLD_MASTER_KEYS", "");
        let config = Config::load(None).unwrap();
        assert_eq!(
            config.allow_private_networks,
            vec!["127.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        assert!(config.old_master_keys.is_empty());
    });
}

#[test]
fn bad_listen_names_the_setting() {
    jail(|jail| {
        jail.set_env("CASEBRIDGE_LISTEN", "abc");
        let msg = load_err(None);
        assert!(
            msg.starts_with(
                "CASEBRIDGE_LISTEN (listen): `abc` is not a socket address like 127.0.0.1:8080"
            ),
            "{msg}"
        );
        assert!(
            msg.ends_with("(from environment variable CASEBRIDGE_LISTEN)"),
            "{msg}"
        );

        // A bare port arrives from figment as a number; it must still get the same message.
        jail.set_env("CASEBRIDGE_LISTEN", "8080");
        let msg = load_err(None);
        assert!(
            msg.contains("CASEBRIDGE_LISTEN (listen): `8080` is not a socket address"),
            "{msg}"
        );
    });
}

#[test]
fn bad_value_in_file_points_at_the_file() {
    jail(|jail| {
        jail.create_file("cb.toml", "listen = \"localhost\"\n")
            .unwrap();
        let msg = load_err(Some(Path::new("cb.toml")));
        assert!(msg.contains("CASEBRIDGE_LISTEN (listen)"), "{msg}");
        assert!(msg.ends_with("(from TOML file cb.toml)"), "{msg}");
    });
}

#[test]
fn bad_database_url_names_the_setting_and_accepted_schemes() {
    jail(|jail| {
        jail.set_env(
            "CASEBRIDGE_DATABASE_URL",
            "mysql://admin:hunter2@db/casebridge",
        );
        let msg = load_err(None);
        assert!(
            msg.starts_with("CASEBRIDGE_DATABASE_URL (database_url): "),
            "{msg}"
        );
        assert!(
            msg.contains("sqlite:") && msg.contains("postgres://") && msg.contains("postgresql://"),
            "{msg}"
        );
        // The URL is echoed to help, but without its password.
        assert!(msg.contains("mysql://admin:***@db/casebridge"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");

        jail.set_env("CASEBRIDGE_DATABASE_URL", "");
        let msg = load_err(None);
        assert!(
            msg.starts_with("CASEBRIDGE_DATABASE_URL (database_url): is set but empty"),
            "{msg}"
        );

        for ok in [
            "sqlite::memory:",
            "sqlite:///tmp/x.db",
            "postgresql://localhost/cb",
        ] {
            jail.set_env("CASEBRIDGE_DATABASE_URL", ok);
            let config = Config::load(None).unwrap();
            assert_eq!(config.effective_database_url(), ok);
        }
    });
}

#[test]
fn bad_cidr_names_the_entry() {
    jail(|jail| {
        jail.set_env(
            "CASEBRIDGE_ALLOW_PRIVATE_NETWORKS",
            "10.0.0.0/8,10.0.0.0/33",
        );
        let msg = load_err(None);
        assert!(
            msg.starts_with(
                "CASEBRIDGE_ALLOW_PRIVATE_NETWORKS (allow_private_networks): `10.0.0.0/33` is not a CIDR network"
            ),
            "{msg}"
        );
    });
}

#[test]
fn public_url_defaults_to_the_bound_address() {
    jail(|jail| {
        let config = Config::load(None).unwrap();
        let bound = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(
            config.public_url_or(bound("127.0.0.1:4000")),
            "http://127.0.0.1:4000"
        );
        assert_eq!(
            config.public_url_or(bound("0.0.0.0:8080")),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            config.public_url_or(bound("[::]:8080")),
            "http://[::1]:8080"
        );
        assert_eq!(
            config.public_url_or(bound("192.0.2.7:8080")),
            "http://192.0.2.7:8080"
        );
        jail.set_env("CASEBRIDGE_PUBLIC_URL", "https://hooks.acme.test/");
        let config = Config::load(None).unwrap();
        assert_eq!(
            config.public_url_or(bound("0.0.0.0:8080")),
            "https://hooks.acme.test"
        );
    });
}

#[test]
fn public_url_scheme_is_checked() {
    jail(|jail| {
        jail.set_env("CASEBRIDGE_PUBLIC_URL", "hooks.example.com");
        let msg = load_err(None);
        assert!(
            msg.starts_with("CASEBRIDGE_PUBLIC_URL (public_url): `hooks.example.com`"),
            "{msg}"
        );
        assert!(msg.contains("http:// or https://"), "{msg}");

        jail.set_env("CASEBRIDGE_PUBLIC_URL", "https://");
        assert!(load_err(None).starts_with("CASEBRIDGE_PUBLIC_URL (public_url)"));

        jail.set_env("CASEBRIDGE_PUBLIC_URL", "http://localhost:8080/cb//");
        let config = Config::load(None).unwrap();
        assert_eq!(
            config.public_url.as_deref(),
            Some("http://localhost:8080/cb")
        );
    });
}

#[test]
fn zero_where_zero_makes_no_sense_is_rejected() {
    for (env, key) in [
        ("CASEBRIDGE_WORKER_CONCURRENCY", "worker_concurrency"),
        ("CASEBRIDGE_DB_MAX_CONNECTIONS", "db_max_connections"),
        ("CASEBRIDGE_JOB_LEASE_SECS", "job_lease_secs"),
        ("CASEBRIDGE_BODY_LIMIT_BYTES", "body_limit_bytes"),
    ] {
        jail(|jail| {
            jail.set_env(env, "0");
            let msg = load_err(None);
            assert!(
                msg.starts_with(&format!("{env} ({key}): must be greater than 0")),
                "{msg}"
            );
        });
    }
    // A zero grace period is a legitimate choice (stop immediately).
    jail(|jail| {
        jail.set_env("CASEBRIDGE_SHUTDOWN_GRACE_SECS", "0");
        assert_eq!(Config::load(None).unwrap().shutdown_grace_secs, 0);
    });
}

#[test]
fn wrongly_typed_values_name_the_setting() {
    jail(|jail| {
        jail.set_env("CASEBRIDGE_DB_MAX_CONNECTIONS", "lots");
        let msg = load_err(None);
        assert!(
            msg.starts_with("CASEBRIDGE_DB_MAX_CONNECTIONS (db_max_connections): "),
            "{msg}"
        );
        assert!(msg.contains("lots"), "{msg}");
    });
    jail(|jail| {
        jail.set_env("CASEBRIDGE_LOG_FORMAT", "xml");
        let msg = load_err(None);
        assert!(
            msg.starts_with(
                "CASEBRIDGE_LOG_FORMAT (log_format): `xml` is not one of auto, json, pretty"
            ),
            "{msg}"
        );
        jail.set_env("CASEBRIDGE_LOG_FORMAT", "Pretty");
        assert_eq!(Config::load(None).unwrap().log_format, LogFormat::Pretty);
    });
}

#[test]
fn allow_http_accepts_common_spellings() {
    for (value, expected) in [("true", true), ("1", true), ("yes", true), ("false", false)] {
        jail(|jail| {
            jail.set_env("CASEBRIDGE_ALLOW_HTTP", value);
            assert_eq!(Config::load(None).unwrap().allow_http, expected, "{value}");
        });
    }
}

#[test]
fn missing_explicit_config_file_is_an_error() {
    jail(|_| {
        let err = Config::load(Some(Path::new("nope/casebridge.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::FileNotFound(_)));
        assert_eq!(
            err.to_string(),
            "config file nope/casebridge.toml does not exist"
        );
    });
}

#[test]
fn config_path_that_is_a_directory_is_an_error() {
    jail(|jail| {
        jail.create_dir("conf").unwrap();
        let msg = load_err(Some(Path::new("conf")));
        assert!(msg.starts_with("config file conf: "), "{msg}");
    });
}

#[test]
fn unknown_toml_key_is_an_error() {
    jail(|jail| {
        jail.create_file(
            "casebridge.toml",
            "listen = \"127.0.0.1:1\"\nworker_concurency = 4\n",
        )
        .unwrap();
        let err = Config::load(Some(Path::new("casebridge.toml"))).unwrap_err();
        match &err {
            ConfigError::UnknownKey { key, .. } => assert_eq!(key, "worker_concurency"),
            other => panic!("expected UnknownKey, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("`worker_concurency`"), "{msg}");
        assert!(msg.contains("TOML file casebridge.toml"), "{msg}");
        assert!(msg.contains("worker_concurrency"), "{msg}");
    });
}

#[test]
fn toml_syntax_error_names_the_file() {
    jail(|jail| {
        jail.create_file("broken.toml", "listen = \n").unwrap();
        let msg = load_err(Some(Path::new("broken.toml")));
        assert!(msg.contains("broken.toml"), "{msg}");
    });
}

#[test]
fn unrelated_casebridge_env_vars_are_ignored() {
    jail(|jail| {
        jail.set_env("CASEBRIDGE_TEST_POSTGRES_URL", "postgres://localhost/test");
        jail.set_env("CASEBRIDGE_SOMETHING_ELSE", "{ not valid");
        let config = Config::load(None).unwrap();
        assert_eq!(config.database_url, None);
    });
}

#[test]
fn empty_master_key_is_an_error() {
    jail(|jail| {
        jail.set_env("CASEBRIDGE_MASTER_KEY", " ");
        let msg = load_err(None);
        assert!(
            msg.starts_with("CASEBRIDGE_MASTER_KEY (master_key): is set but empty"),
            "{msg}"
        );
    });
}

#[test]
fn debug_hides_secrets() {
    jail(|jail| {
        let key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
        let old = "b2xkIGtleSBvbGQga2V5IG9sZCBrZXkgb2xkIGtleSE=";
        jail.set_env("CASEBRIDGE_MASTER_KEY", key);
        jail.set_env("CASEBRIDGE_OLD_MASTER_KEYS", old);
        jail.set_env(
            "CASEBRIDGE_DATABASE_URL",
            "postgres://cb:s3cr3t-pw@db:5432/cb?sslmode=require&password=qp-s3cr3t",
        );
        let config = Config::load(None).unwrap();
        assert_eq!(config.master_key.as_ref().unwrap().expose_secret(), key);

        let debug = format!("{config:?}");
        for secret in [key, old, "s3cr3t-pw", "qp-s3cr3t"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(
            debug.contains("postgres://cb:***@db:5432/cb?sslmode=require&password=***"),
            "{debug}"
        );
        assert_eq!(
            config.effective_database_url_redacted(),
            "postgres://cb:***@db:5432/cb?sslmode=require&password=***"
        );
        // The real URL is still available to connect with.
        assert!(config.effective_database_url().contains("s3cr3t-pw"));
    });
}

#[test]
fn from_figment_uses_toml_keys() {
    jail(|_| {
        let figment = Figment::new().merge(Toml::string(
            "listen = \"[::1]:3000\"\nlog_filter = \"debug\"\n",
        ));
        let config = Config::from_figment(figment).unwrap();
        assert_eq!(config.listen, "[::1]:3000".parse().unwrap());
        assert_eq!(config.log_filter, "debug");
    });
}

#[test]
fn sqlite_url_escapes_special_characters_in_data_dir() {
    jail(|jail| {
        jail.set_env("CASEBRIDGE_DATA_DIR", "/srv/cb?#100%");
        let config = Config::load(None).unwrap();
        assert_eq!(
            config.effective_database_url(),
            "sqlite:///srv/cb%3F%23100%25/casebridge.db?mode=rwc"
        );
    });
}

#[test]
fn redact_url_leaves_urls_without_secrets_alone() {
    for url in [
        "sqlite://./data/casebridge.db?mode=rwc",
        "sqlite::memory:",
        "postgres://cb@db/cb",
        "postgres://db/cb?sslmode=require",
    ] {
        assert_eq!(redact_url(url), url);
    }
    assert_eq!(
        redact_url("postgresql://u:p@ss@host/db#frag"),
        "postgresql://u:***@host/db#frag"
    );
}
