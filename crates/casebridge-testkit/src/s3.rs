//! A real S3-compatible server on loopback for the object-store tests: moto in server mode
//! (`pip install 'moto[server]'`; `.ci/run` installs it). Not a mock of the client: the tests
//! talk S3 over HTTP to it with the same `object_store` client production uses.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `CASEBRIDGE_TEST_MOTO`: the moto server command (default `moto_server` on `PATH`).
pub const MOTO_ENV: &str = "CASEBRIDGE_TEST_MOTO";

const INSTALL_HINT: &str = "the S3 tests need moto's server: `pip install 'moto[server]'` \
                            (`.ci/run` installs it), or name the command in CASEBRIDGE_TEST_MOTO";

/// A moto server on `127.0.0.1`, killed when dropped. Each has its own buckets.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    /// Starts moto on a free loopback port and waits until it answers.
    ///
    /// # Panics
    /// When moto is not installed (naming what to install) or does not answer within 30 s.
    pub async fn start() -> Self {
        let command = std::env::var(MOTO_ENV).unwrap_or_else(|_| "moto_server".into());
        // A free port: bound and released at once (moto takes no port 0).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(&command)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}` ({e}): {INSTALL_HINT}"));
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http.get(&server.endpoint).send().await.is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "`{command}` did not answer on {} within 30 s",
                server.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a bucket (moto accepts any credentials).
    pub async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// The object-store settings for `s3://{bucket}/{prefix}` on this server.
    pub fn settings(&self, bucket: &str, prefix: &str) -> casebridge_files::StoreSettings {
        casebridge_files::StoreSettings {
            url: Some(format!("s3://{bucket}/{prefix}")),
            region: Some("us-east-1".into()),
            endpoint: Some(self.endpoint.clone()),
            access_key_id: Some("test-key".into()),
            secret_access_key: Some("test-secret".to_owned().into()),
        }
    }

    /// The keys of the objects in `bucket` (S3 ListObjectsV2, read from its XML answer).
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let body = reqwest::Client::new()
            .get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .send()
            .await
            .expect("list objects")
            .text()
            .await
            .expect("list objects body");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
