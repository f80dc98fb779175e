//! A write service under test, spawn_app style: a fresh database, the service
//! built on it with port 0, rows arranged, then a [`WalProbe`] watching every
//! change the test's requests make.

use std::future::Future;

use outflow_service::{
    app::Application,
    auth::{JwtKeys, JwtSettings, Role},
    edge::EdgeLimits,
    settings::{DatabaseSettings, HttpSettings, ServiceSettings},
};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::PgPool;

use crate::{Stack, WalProbe};

pub struct TestService {
    pub address: String,
    pub pool: PgPool,
    pub database: String,
    pub stack: Stack,
    pub jwt: JwtKeys,
    pub probe: WalProbe,
    pub http: reqwest::Client,
}

impl TestService {
    /// Builds a service on a fresh `test_<name>_*` database; `arrange` (SQL) runs
    /// after the migrations and before the probe starts watching.
    pub async fn spawn<F, Fut>(name: &str, arrange: &str, build: F) -> TestService
    where
        F: FnOnce(ServiceSettings) -> Fut,
        Fut: Future<Output = anyhow::Result<Application>>,
    {
        Self::spawn_with(name, arrange, |_| {}, build).await
    }

    /// [`TestService::spawn`] with the settings adjusted first (limits, ...).
    pub async fn spawn_with<F, Fut>(name: &str, arrange: &str, adjust: impl FnOnce(&mut ServiceSettings), build: F) -> TestService
    where
        F: FnOnce(ServiceSettings) -> Fut,
        Fut: Future<Output = anyhow::Result<Application>>,
    {
        let stack = Stack::from_env();
        let (database, pool) = stack.fresh_database(name).await.expect("fresh database");
        let mut settings = ServiceSettings {
            http: HttpSettings { host: "127.0.0.1".into(), port: 0, limits: EdgeLimits::default() },
            database: DatabaseSettings::new(SecretString::from(stack.database_url(&database)), 5),
            registry_url: stack.registry_url.clone(),
            registry_user: Some(stack.registry_user.clone()),
            registry_password: Some(stack.registry_password.clone().into()),
            jwt_secret: SecretString::from(stack.jwt_secret.clone()),
            jwt: JwtSettings::default(),
        };
        adjust(&mut settings);
        let jwt = JwtKeys::new(&settings.jwt_secret);
        let app = build(settings).await.expect("the service builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        if !arrange.is_empty() {
            sqlx::raw_sql(arrange).execute(&pool).await.expect("arranging rows");
        }
        let probe = WalProbe::start(&pool).await.expect("WAL probe");
        TestService { address, pool, database, stack, jwt, probe, http: reqwest::Client::new() }
    }

    pub fn token(&self, sub: &str, role: Role) -> String {
        self.jwt.mint(sub, role, 600)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&self.pool).await.expect("count")
    }

    pub async fn cleanup(self) {
        self.probe.stop().await.ok();
        self.pool.close().await;
        self.stack.drop_database(&self.database).await.expect("test database dropped");
    }
}

/// Asserts the status and the JSON error code of a refused request.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// The forms of a bad bearer token every write endpoint must refuse with 401:
/// expired, signed with another secret, `alg=none`, not a JWT.
pub fn bad_tokens(jwt: &JwtKeys, sub: &str) -> Vec<String> {
    let valid = jwt.mint(sub, Role::Admin, 600);
    let payload = valid.split('.').nth(1).expect("a JWT has a payload").to_owned();
    vec![
        jwt.mint(sub, Role::Admin, -600),
        JwtKeys::new(&SecretString::from("not-the-secret")).mint(sub, Role::Admin, 600),
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."),
        "not-a-jwt".to_owned(),
    ]
}
