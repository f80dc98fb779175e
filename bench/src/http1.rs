//! A lean load-generating HTTP/1.1 client: one keep-alive connection per
//! worker, as wrk does, so that the client's own cost (which shares the two
//! cores with the server) stays small and equal across runs.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1::SendRequest, Request};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Mutex};

pub struct Connection {
    address: String,
    sender: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl Connection {
    pub fn new(address: &str) -> Self {
        Connection { address: address.to_owned(), sender: Mutex::new(None) }
    }

    /// Sends one request on this worker's connection (opened on first use or
    /// after the server closed it) and returns the status and the body.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
        let mut guard = self.sender.lock().await;
        if guard.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(&self.address).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            *guard = Some(sender);
        }
        let sender = guard.as_mut().expect("connected above");
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
