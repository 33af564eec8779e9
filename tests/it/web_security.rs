//! Optional protection of the endpoints: TLS and bcrypt basic auth from the web config file.

use crate::common;

use common::{one_session_api, start_with_web_config};

#[tokio::test]
async fn basic_auth_guards_everything_but_health() {
    let api = one_session_api().await;
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let exp = start_with_web_config(&api, web.to_str().unwrap()).await;
    let client = reqwest::Client::new();
    let get = |path: &str, user: Option<(&str, &str)>| {
        let mut req = client.get(format!("{}{path}", exp.url));
        if let Some((name, password)) = user {
            req = req.basic_auth(name, Some(password));
        }
        async { req.send().await.unwrap() }
    };
    for path in ["/metrics", "/", "/probe?org_id=org-a", "/sd"] {
        let r = get(path, None).await;
        assert_eq!(r.status(), 401, "{path}");
        let challenge = &r.headers()["www-authenticate"];
        assert_eq!(challenge, "Basic realm=\"devin-exporter\"");
        let wrong = get(path, Some(("prometheus", "guess"))).await;
        assert_eq!(wrong.status(), 401, "{path}");
    }
    let unknown = get("/metrics", Some(("mallory", "s3cret"))).await;
    assert_eq!(unknown.status(), 401);
    for _ in 0..2 {
        // The second time the remembered check answers (no bcrypt round).
        let ok = get("/metrics", Some(("prometheus", "s3cret"))).await;
        assert_eq!(ok.status(), 200);
        let body = ok.text().await.unwrap();
        assert!(body.contains("devin_up{org_id=\"org-a\"} 1"));
    }
    for path in ["/healthz", "/readyz"] {
        let r = get(path, None).await;
        assert_eq!(r.status(), 200, "{path} stays open for probes");
    }
}

#[tokio::test]
async fn tls_from_cert_and_key_files() {
    let api = one_session_api().await;
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
    let web = dir.path().join("web.yml");
    let config = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";
    std::fs::write(&web, config).unwrap();
    let exp = start_with_web_config(&api, web.to_str().unwrap()).await;
    assert!(exp.url.starts_with("https://"));

    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let metrics = format!("{}/metrics", exp.url);
    let r = trusted.get(&metrics).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("devin_sessions{"));

    // Plain HTTP to the TLS port gets no metrics.
    let r = reqwest::get(metrics.replace("https://", "http://")).await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
    // A client that does not trust the certificate refuses it.
    assert!(reqwest::get(&metrics).await.is_err());
}
