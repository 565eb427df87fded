//! Where webhooks may be sent: a URL a tenant supplies must not make the server reach
//! into its own network (server-side request forgery). Endpoints are `https` (plain
//! `http` only with the operator's development flag, `--allow-insecure-webhooks`), and
//! their address must be public: never loopback, private, link-local (the cloud
//! metadata service among them), shared, multicast, reserved or unspecified. The address
//! is checked when the endpoint is registered and again at every delivery, where the
//! client resolves host names through [`PublicOnly`] (a name that resolves to any such
//! address is refused, so a name cannot be re-pointed at the server's network after it
//! was accepted) and follows no redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is a public address webhooks may reach.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = ip.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let octets = ip.octets();
                return is_public_v4(Ipv4Addr::new(
                    octets[12], octets[13], octets[14], octets[15],
                ));
            }
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local
                || (segments[0] & 0xffc0) == 0xfe80 // link-local
                || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254)) // metadata (AWS)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: the metadata service
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

/// A webhook URL's host (without the brackets of an IPv6 literal) and port, if its
/// scheme may be used: `https`, or `http` too when `allow_insecure`.
fn target(url: &str, allow_insecure: bool) -> Result<(String, u16), &'static str> {
    const NOT_HTTPS: &str = "url must be an https URL";
    let uri: axum::http::Uri = url.parse().map_err(|_| NOT_HTTPS)?;
    let port = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") if allow_insecure => 80,
        _ => return Err(NOT_HTTPS),
    };
    let host = uri.host().ok_or(NOT_HTTPS)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, uri.port_u16().unwrap_or(port)))
}

/// Why a URL may not receive webhooks, if it may not.
pub async fn vet(url: &str, allow_insecure: bool) -> Result<(), &'static str> {
    let (host, port) = target(url, allow_insecure)?;
    if allow_insecure {
        return Ok(());
    }
    let addresses = resolve(&host, port).await?;
    if addresses.iter().all(|a| is_public(a.ip())) {
        Ok(())
    } else {
        Err("url must not point at a loopback, private, link-local or reserved address")
    }
}

/// `host`'s addresses (an IP literal is its own), or why none.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, &'static str> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                Err("url's host does not resolve")
            } else {
                Ok(addresses)
            }
        }
        _ => Err("url's host does not resolve"),
    }
}

/// The resolver of the delivery client: a host name resolving to any address that is
/// not public is refused.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolve(&host, 0).await.map_err(|e| e.to_string())?;
            if !addresses.iter().all(|a| is_public(a.ip())) {
                return Err("the endpoint's host resolves to an address that is not public".into());
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The client webhook deliveries go out with: bounded time per attempt, no redirects,
/// and (unless `allow_insecure`) host names resolved through [`PublicOnly`].
pub fn delivery_client(allow_insecure: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("growthgraph-webhooks/1");
    let builder = match allow_insecure {
        true => builder,
        false => builder.dns_resolver(Arc::new(PublicOnly)),
    };
    builder.build().expect("HTTP client builds")
}

/// Whether a delivery to `url` may be attempted: an IP literal host is never resolved,
/// so the client's resolver does not see it; it is checked here.
pub fn literal_is_allowed(url: &str, allow_insecure: bool) -> bool {
    if allow_insecure {
        return true;
    }
    match target(url, false) {
        // A host name is checked by the resolver as the client connects.
        Ok((host, _)) => host.parse::<IpAddr>().map(is_public).unwrap_or(true),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "fd00:ec2::254",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn endpoints_must_be_https_on_public_addresses_unless_the_development_flag_says() {
        for refused in [
            "http://93.184.216.34/hook",
            "https://127.0.0.1/hook",
            "https://localhost/hook",
            "https://[::1]:5432/hook",
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(vet(refused, false).await.is_err(), "{refused}");
        }
        assert!(vet("https://93.184.216.34/hook", false).await.is_ok());
        assert!(vet("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(vet("ftp://127.0.0.1/", true).await.is_err());
        assert!(!literal_is_allowed("https://127.0.0.1/x", false));
        assert!(!literal_is_allowed("http://example.com/x", false));
        assert!(literal_is_allowed("https://example.com/x", false));
        assert!(literal_is_allowed("http://127.0.0.1/x", true));
    }
}
