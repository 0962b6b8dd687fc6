//! The secrets of a server (`/admin/secrets`), behind its admin token.

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::Client;
use super::http::Auth;
use crate::error::Result;
use crate::protocol::NewSecret;

/// A name in the list of secrets: a string, or an object with a name (as other servers send).
#[derive(Deserialize)]
#[serde(untagged)]
enum Listed {
    Name(String),
    Entry { name: String },
}

/// The answer of `GET /admin/secrets/{name}`.
#[derive(Deserialize)]
struct Secret {
    value: String,
}

impl Client {
    /// `GET /admin/secrets`: the names of the secrets the server keeps (never their values).
    /// Needs the admin token ([`Client::admin_token`]): without it, or with a wrong one, an
    /// error of kind [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized).
    ///
    /// ```no_run
    /// # async fn demo() -> flux::Result<()> {
    /// let client = flux::Client::new("http://127.0.0.1:8000")?.admin_token("my-admin-token");
    /// client.set_secret("API_KEY", "s3cret").await?;
    /// assert!(client.list_secrets().await?.contains(&"API_KEY".to_string()));
    /// assert_eq!(client.get_secret("API_KEY").await?, "s3cret");
    /// client.remove_secret("API_KEY").await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_secrets(&self) -> Result<Vec<String>> {
        let url = self.http().url(&["admin", "secrets"])?;
        let listed: Vec<Listed> = self.http().json(self.http().request(Method::GET, url, Auth::Admin)).await?;
        Ok(listed
            .into_iter()
            .map(|item| match item {
                Listed::Name(name) | Listed::Entry { name } => name,
            })
            .collect())
    }

    /// `POST /admin/secrets`: stores secret `name` with `value` (replacing one of that name).
    pub async fn set_secret(&self, name: &str, value: &str) -> Result<()> {
        let url = self.http().url(&["admin", "secrets"])?;
        let body = NewSecret { name: name.to_string(), value: value.to_string() };
        let _: Value = self.http().json(self.http().request(Method::POST, url, Auth::Admin).json(&body)).await?;
        Ok(())
    }

    /// `GET /admin/secrets/{name}`: the value of secret `name`;
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when there is none.
    pub async fn get_secret(&self, name: &str) -> Result<String> {
        let url = self.http().url(&["admin", "secrets", name])?;
        let secret: Secret = self.http().json(self.http().request(Method::GET, url, Auth::Admin)).await?;
        Ok(secret.value)
    }

    /// `DELETE /admin/secrets/{name}`: removes secret `name`;
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when there is none.
    pub async fn remove_secret(&self, name: &str) -> Result<()> {
        let url = self.http().url(&["admin", "secrets", name])?;
        let _: Value = self.http().json(self.http().request(Method::DELETE, url, Auth::Admin)).await?;
        Ok(())
    }
}
