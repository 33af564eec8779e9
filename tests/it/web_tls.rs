//! The web config format's TLS and HTTP server options with certificates made at test time:
//! client certificates, TLS versions, extra headers, HTTP/2, and the healthcheck under mutual
//! TLS.

use crate::common;

use common::{TestExporter, one_session_api, start_with_web_config};
use devin_exporter::watch::RECHECK;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use wiremock::MockServer;

/// A CA and what it signs.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names`; returns (certificate PEM, key PEM).
    fn sign(&self, names: &[&str], client: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Client certificates signed by `clients.crt` are required.
const VERIFY: &str =
    "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n";

/// An exporter of one session behind TLS, and the directory of its files.
struct Tls {
    dir: tempfile::TempDir,
    exp: TestExporter,
    _api: MockServer,
}

impl Tls {
    /// Writes the server's files and a web config with `tls_extra` under `tls_server_config`
    /// and `rest` at the top level, and starts the exporter behind it.
    async fn start(server_ca: &Ca, client_ca: &Ca, tls_extra: &str, rest: &str) -> Self {
        let api = one_session_api().await;
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = server_ca.sign(&["localhost", "127.0.0.1"], false);
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        std::fs::write(dir.path().join("clients.crt"), client_ca.pem()).unwrap();
        let path = dir.path().join("web.yml");
        let tls = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";
        std::fs::write(&path, format!("{tls}{tls_extra}{rest}")).unwrap();
        let exp = start_with_web_config(&api, path.to_str().unwrap()).await;
        Tls {
            dir,
            exp,
            _api: api,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.exp.url)
    }
}

fn client(server_ca: &Ca, identity: Option<&(String, String)>) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server_ca.pem().as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b
}

async fn get(client: reqwest::ClientBuilder, url: &str) -> Result<reqwest::Response, String> {
    client
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn require_and_verify_client_cert() {
    let (server_ca, client_ca, stranger_ca) = (Ca::new("server"), Ca::new("clients"), Ca::new("x"));
    let headers = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n";
    let t = Tls::start(&server_ca, &client_ca, VERIFY, headers).await;
    let metrics = t.url("/metrics");

    let refused = get(client(&server_ca, None), &metrics).await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");

    let good = client_ca.sign(&["prometheus.example"], true);
    let r = get(client(&server_ca, Some(&good)), &metrics)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "deny");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let body = r.text().await.unwrap();
    assert!(body.contains("devin_up{org_id=\"org-a\"} 1"));
    // Every response carries the headers, errors included.
    let probe = t.url("/probe");
    let r = get(client(&server_ca, Some(&good)), &probe).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-frame-options"], "deny");

    let stranger = stranger_ca.sign(&["prometheus.example"], true);
    let refused = get(client(&server_ca, Some(&stranger)), &metrics).await;
    assert!(refused.is_err(), "certificate of another CA: {refused:?}");
}

#[tokio::test]
async fn allowed_sans_narrow_the_accepted_clients() {
    let (server_ca, client_ca) = (Ca::new("server"), Ca::new("clients"));
    let sans = format!("{VERIFY}  client_allowed_sans: [prometheus.example]\n");
    let t = Tls::start(&server_ca, &client_ca, &sans, "").await;
    let metrics = t.url("/metrics");
    let allowed = client_ca.sign(&["prometheus.example"], true);
    let r = get(client(&server_ca, Some(&allowed)), &metrics)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let other = client_ca.sign(&["grafana.example"], true);
    let refused = get(client(&server_ca, Some(&other)), &metrics).await;
    assert!(refused.is_err(), "SAN not allowed: {refused:?}");
}

#[tokio::test]
async fn min_version_tls13_refuses_a_tls12_client() {
    let server_ca = Ca::new("server");
    let tls12 = || client(&server_ca, None).max_tls_version(reqwest::tls::Version::TLS_1_2);
    let t = Tls::start(&server_ca, &server_ca, "  min_version: TLS13\n", "").await;
    let refused = get(tls12(), &t.url("/healthz")).await;
    assert!(refused.is_err(), "TLS 1.2 client: {refused:?}");
    let r = get(client(&server_ca, None), &t.url("/healthz")).await;
    assert_eq!(r.unwrap().status(), 200);

    // The default accepts TLS 1.2.
    let t = Tls::start(&server_ca, &server_ca, "", "").await;
    let r = get(tls12(), &t.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn http2_can_be_turned_off() {
    let server_ca = Ca::new("server");
    let off = "http_server_config:\n  http2: false\n";
    for (http2, want) in [
        ("", reqwest::Version::HTTP_2),
        (off, reqwest::Version::HTTP_11),
    ] {
        let t = Tls::start(&server_ca, &server_ca, "", http2).await;
        let r = get(client(&server_ca, None), &t.url("/healthz"))
            .await
            .unwrap();
        assert_eq!(r.version(), want, "{http2:?}");
    }
}

#[tokio::test]
async fn healthcheck_presents_its_client_certificate() {
    let (server_ca, client_ca) = (Ca::new("server"), Ca::new("clients"));
    let t = Tls::start(&server_ca, &client_ca, VERIFY, "").await;
    let (cert, key) = client_ca.sign(&["healthcheck"], true);
    let file = |name: &str| t.dir.path().join(name).display().to_string();
    std::fs::write(file("hc.crt"), cert).unwrap();
    std::fs::write(file("hc.key"), key).unwrap();
    let url = t.url("/healthz");
    let run = |env: Vec<(&'static str, String)>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(common::procs::exporter_bin())
                .args(["healthcheck", "--url", &url])
                .env_clear()
                .envs(env)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let (code, err) = run(vec![]).await.unwrap();
    assert_eq!(code, Some(1), "refused without a certificate: {err}");
    let cert = ("DEVIN_HEALTHCHECK_CLIENT_CERT", file("hc.crt"));
    let key = ("DEVIN_HEALTHCHECK_CLIENT_KEY", file("hc.key"));
    let (code, err) = run(vec![cert.clone(), key]).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(vec![cert]).await.unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("DEVIN_HEALTHCHECK_CLIENT_KEY"), "{err}");
}

#[tokio::test]
async fn rate_limit_answers_429_beyond_the_burst() {
    let api = one_session_api().await;
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "rate_limit:\n  interval: 1h\n  burst: 2\n").unwrap();
    let exp = start_with_web_config(&api, web.to_str().unwrap()).await;
    let url = format!("{}/healthz", exp.url);
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(reqwest::get(&url).await.unwrap().status().as_u16());
    }
    assert_eq!(codes, [200, 200, 429]);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let (old_ca, new_ca) = (Ca::new("old"), Ca::new("new"));
    let t = Tls::start(&old_ca, &old_ca, "", "").await;
    let healthz = t.url("/healthz");
    assert!(get(client(&old_ca, None), &healthz).await.is_ok());
    assert!(get(client(&new_ca, None), &healthz).await.is_err());

    // A half-done renewal (new certificate, old key) keeps the old pair in service.
    let (cert, key) = new_ca.sign(&["localhost", "127.0.0.1"], false);
    std::fs::write(t.dir.path().join("tls.crt"), &cert).unwrap();
    // The files are looked at once per RECHECK at most.
    common::skip_time(RECHECK).await;
    assert!(get(client(&old_ca, None), &healthz).await.is_ok());
    std::fs::write(t.dir.path().join("tls.key"), &key).unwrap();
    assert!(
        get(client(&new_ca, None), &healthz).await.is_err(),
        "not looked at again yet"
    );
    common::skip_time(RECHECK).await;
    let r = get(client(&new_ca, None), &healthz).await;
    assert_eq!(r.map(|r| r.status().as_u16()), Ok(200));
    assert!(get(client(&old_ca, None), &healthz).await.is_err());
}

#[tokio::test]
async fn require_any_client_cert_takes_any_certificate_but_not_none() {
    let server_ca = Ca::new("server");
    let stranger = Ca::new("anyone").sign(&["someone.example"], true);
    for (mode, without) in [("RequireAnyClientCert", false), ("RequestClientCert", true)] {
        let mode_line = format!("  client_auth_type: {mode}\n");
        let t = Tls::start(&server_ca, &server_ca, &mode_line, "").await;
        let healthz = t.url("/healthz");
        let r = get(client(&server_ca, Some(&stranger)), &healthz).await;
        assert_eq!(r.map(|r| r.status().as_u16()), Ok(200), "{mode}");
        let r = get(client(&server_ca, None), &healthz).await;
        assert_eq!(r.is_ok(), without, "{mode} without a certificate");
    }
}
