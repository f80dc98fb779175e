//! Where a webhook may point. A customer chooses the URL, and the shop's
//! process calls it: without these rules a URL could make Outflow call its
//! own services, the cloud's metadata endpoint or anything else on its
//! network (server-side request forgery). So a URL is `https` (or `http` where
//! private networks are allowed, in development), has no credentials in it,
//! and its host's addresses are public ones, checked when it is registered and
//! again on every delivery, by the resolver that connects (a name that
//! resolved to a public address at registration may not later point inward).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use url::{Host, Url};

/// The longest URL a webhook may have.
pub const MAX_URL_LENGTH: usize = 2_048;

/// Why a URL cannot be a webhook's, in words for the API's error.
pub fn check(url: &str, allow_private: bool) -> Result<Url, String> {
    if url.len() > MAX_URL_LENGTH {
        return Err(format!("a webhook URL is at most {MAX_URL_LENGTH} characters"));
    }
    let parsed = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("a webhook URL is https".into()),
        other => return Err(format!("a webhook URL is https, not {other}")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a webhook URL carries no credentials (the signature authenticates the delivery)".into());
    }
    if parsed.fragment().is_some() {
        return Err("a webhook URL has no fragment".into());
    }
    let ip = match parsed.host() {
        None => return Err("a webhook URL names a host".into()),
        Some(Host::Domain(name)) if !allow_private && (name == "localhost" || name.ends_with(".localhost")) => {
            return Err("a webhook URL may not name this machine".into())
        }
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
    };
    if let Some(ip) = ip.filter(|ip| !allow_private && !is_public(*ip)) {
        return Err(format!("a webhook URL may not point at a private address ({ip})"));
    }
    Ok(parsed)
}

/// Whether `ip` is an address on the public internet: not loopback, private,
/// link-local (the cloud metadata endpoint), shared, documentation,
/// multicast, unspecified or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated, still routed inside some networks)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] == 0) // Teredo: a tunnel to an address it hides
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // discard-only
        }
    }
}

/// The IPv4 address an IPv6 one carries to an IPv4 host: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`,
/// `64:ff9b:1::/48`) or 6to4 (`2002:ab:cd::/16`). Each reaches that IPv4 host,
/// so it is judged as that host.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let from = |high: u16, low: u16| std::net::Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, high, low] if high != 0 => Some(from(high, low)),
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => Some(from(high, low)),
        [0x64, 0xff9b, 1, ..] => Some(from(s[6], s[7])),
        [0x2002, high, low, ..] => Some(from(high, low)),
        _ => None,
    }
}

/// A resolver that gives the HTTP client only public addresses (or any,
/// where private networks are allowed); a name with none left fails to resolve.
pub struct PublicOnly {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found.into_iter().filter(|a| allow_private || is_public(a.ip())).collect();
            if usable.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client deliveries go out with: no redirects (a receiver could
/// redirect into the network), no proxy, the [`PublicOnly`] resolver, and
/// `timeout`.
pub fn client(allow_private: bool, timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the name itself, past the resolver's check.
        .no_proxy()
        .dns_resolver(Arc::new(PublicOnly { allow_private }))
        .timeout(timeout)
        .user_agent("Outflow-Webhooks/1")
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_urls_without_credentials_are_webhooks() {
        for good in ["https://hooks.example.com/outflow", "https://93.184.216.34:8443/in?shop=1"] {
            assert!(check(good, false).is_ok(), "{good}");
        }
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://127.0.0.1/",
            "https://localhost:8080/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:192.168.0.1]/",
            "https://100.64.0.1/",
            "https://hooks.example.com/#x",
            "not a url",
        ] {
            assert!(check(bad, false).is_err(), "{bad}");
        }
        assert!(check(&format!("https://example.com/{}", "a".repeat(MAX_URL_LENGTH)), false).is_err());
    }

    #[test]
    fn development_may_call_this_machine_over_http() {
        assert!(check("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check("http://localhost:9000/hook", true).is_ok());
        assert!(check("https://u:p@127.0.0.1/", true).is_err(), "still no credentials");
    }

    #[test]
    fn addresses_are_public_or_not() {
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fc00::1",
            "fec0::1",
            "::",
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "2002:c0a8:101::1",
            "2001:0:4136:e378::1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }

    #[tokio::test]
    async fn the_resolver_gives_no_private_address_unless_allowed() {
        use reqwest::dns::Resolve;
        let name = |host: &str| host.parse::<reqwest::dns::Name>().unwrap();
        assert!(PublicOnly { allow_private: false }.resolve(name("localhost")).await.is_err());
        let found: Vec<SocketAddr> = PublicOnly { allow_private: true }.resolve(name("localhost")).await.unwrap().collect();
        assert!(found.iter().all(|a| a.ip().is_loopback()) && !found.is_empty(), "{found:?}");
    }
}
