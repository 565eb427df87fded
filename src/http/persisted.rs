//! Persisted documents. Apollo's automatic persisted queries: a request may name its
//! document by `extensions.persistedQuery { version: 1, sha256Hash }` and leave `query`
//! out; a hash the server does not know answers `PersistedQueryNotFound` (code
//! `PERSISTED_QUERY_NOT_FOUND`), the client sends the document once with its hash, and
//! later requests (GET ones too, which a CDN may cache) need only the hash. With
//! `--trusted-documents FILE` only the documents the file lists run (production front
//! ends): by their hash, or by their text when it hashes to a listed one; anything else
//! is `FORBIDDEN`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::auth::sha256_hex;
use async_graphql::Request;

/// Most bytes of documents the automatic cache keeps (the oldest go first).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Why a request's document could not be had.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// A hash the server does not know: send the document with it.
    NotFound,
    /// The request is not a GraphQL request (no document, a malformed `persistedQuery`, a
    /// hash its document does not have).
    Invalid(&'static str),
    /// Trusted documents only, and this one is not among them.
    NotTrusted,
}

pub struct PersistedDocuments {
    /// `--trusted-documents`: the only documents that run, by their hash.
    trusted: Option<HashMap<String, String>>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    documents: HashMap<String, String>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Cache {
    fn remember(&mut self, hash: String, document: &str) {
        if self.documents.contains_key(&hash) || document.len() > CACHE_BYTES {
            return;
        }
        while self.bytes + document.len() > CACHE_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.documents.remove(&oldest) {
                self.bytes -= gone.len();
            }
        }
        self.bytes += document.len();
        self.order.push_back(hash.clone());
        self.documents.insert(hash, document.to_owned());
    }
}

impl PersistedDocuments {
    /// Automatic persisted queries, and no restriction.
    pub fn automatic() -> Self {
        PersistedDocuments {
            trusted: None,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// [`PersistedDocuments::trusted`] from the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::trusted(&text)
            .map_err(|e| format!("{} is no trusted-documents file: {e}", path.display()))
    }

    /// Only the documents of a trusted-documents file run: Apollo's persisted query
    /// manifest (`{"format": "apollo-persisted-query-manifest", "operations": [{"id",
    /// "body"}, …]}`) or a JSON object of SHA-256 (hex) to document. Every hash must be
    /// its document's.
    pub fn trusted(text: &str) -> Result<Self, String> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let pairs: Vec<(String, String)> = match json.get("operations") {
            Some(serde_json::Value::Array(operations)) => operations
                .iter()
                .map(|o| match (o["id"].as_str(), o["body"].as_str()) {
                    (Some(id), Some(body)) => Ok((id.to_owned(), body.to_owned())),
                    _ => Err("every operation needs an id and a body".to_owned()),
                })
                .collect::<Result<_, _>>()?,
            _ => match json {
                serde_json::Value::Object(map) => map
                    .into_iter()
                    .map(|(hash, document)| match document {
                        serde_json::Value::String(document) => Ok((hash, document)),
                        _ => Err(format!("{hash}: a document is a string")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err("neither a persisted query manifest nor an object".into()),
            },
        };
        let mut trusted = HashMap::with_capacity(pairs.len());
        for (hash, document) in pairs {
            if sha256_hex(&document) != hash.to_ascii_lowercase() {
                return Err(format!("{hash} is not the SHA-256 of its document"));
            }
            trusted.insert(hash.to_ascii_lowercase(), document);
        }
        Ok(PersistedDocuments {
            trusted: Some(trusted),
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Gives `request` its document (from its hash), or checks the one it has; remembers
    /// a document sent with its hash.
    pub fn resolve(&self, request: &mut Request) -> Result<(), Unresolved> {
        let hash = match request.extensions.get("persistedQuery") {
            None => None,
            Some(persisted) => Some(hash_of(persisted)?),
        };
        let has_document = !request.query.trim().is_empty();
        match (has_document, hash) {
            (false, None) => Err(Unresolved::Invalid("a GraphQL request needs a query")),
            (false, Some(hash)) => {
                let document = match &self.trusted {
                    Some(trusted) => trusted.get(&hash).cloned(),
                    None => self
                        .cache
                        .lock()
                        .expect("the document cache")
                        .documents
                        .get(&hash)
                        .cloned(),
                };
                request.query = document.ok_or(Unresolved::NotFound)?;
                Ok(())
            }
            (true, hash) => {
                let computed = match (&hash, &self.trusted) {
                    (None, None) => return Ok(()),
                    _ => sha256_hex(&request.query),
                };
                if hash.as_ref().is_some_and(|h| *h != computed) {
                    return Err(Unresolved::Invalid("provided sha does not match query"));
                }
                match &self.trusted {
                    Some(trusted) if !trusted.contains_key(&computed) => {
                        Err(Unresolved::NotTrusted)
                    }
                    Some(_) => Ok(()),
                    None => {
                        let mut cache = self.cache.lock().expect("the document cache");
                        cache.remember(computed, &request.query);
                        Ok(())
                    }
                }
            }
        }
    }
}

/// The hash of `extensions.persistedQuery` (version 1, 64 hex digits).
fn hash_of(persisted: &async_graphql::Value) -> Result<String, Unresolved> {
    let invalid = Unresolved::Invalid("persistedQuery needs version 1 and a sha256Hash");
    let async_graphql::Value::Object(fields) = persisted else {
        return Err(invalid);
    };
    let version = fields.get("version").and_then(|v| match v {
        async_graphql::Value::Number(n) => n.as_i64(),
        _ => None,
    });
    let hash = match fields.get("sha256Hash") {
        Some(async_graphql::Value::String(hash)) => hash,
        _ => return Err(invalid),
    };
    if version != Some(1) || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid);
    }
    Ok(hash.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, hash: Option<&str>) -> Request {
        let mut request = Request::new(query);
        if let Some(hash) = hash {
            let extension = serde_json::json!({ "version": 1, "sha256Hash": hash });
            request.extensions.insert(
                "persistedQuery".into(),
                async_graphql::Value::from_json(extension).unwrap(),
            );
        }
        request
    }

    #[test]
    fn automatic_persisted_queries_follow_apollos_flow() {
        let documents = PersistedDocuments::automatic();
        let query = "{ viewer { tenant { name } } }";
        let hash = sha256_hex(query);
        // Unknown hash, then the document with its hash, then the hash alone.
        assert_eq!(
            documents.resolve(&mut request("", Some(&hash))),
            Err(Unresolved::NotFound)
        );
        assert_eq!(documents.resolve(&mut request(query, Some(&hash))), Ok(()));
        let mut by_hash = request("", Some(&hash));
        assert_eq!(documents.resolve(&mut by_hash), Ok(()));
        assert_eq!(by_hash.query, query);
        // A hash that is not the document's is refused, and not remembered.
        let other = sha256_hex("{ x }");
        assert!(matches!(
            documents.resolve(&mut request(query, Some(&other))),
            Err(Unresolved::Invalid(_))
        ));
        assert_eq!(
            documents.resolve(&mut request("", Some(&other))),
            Err(Unresolved::NotFound)
        );
        // Plain requests pass; malformed extensions and empty requests do not.
        assert_eq!(documents.resolve(&mut request("{ a }", None)), Ok(()));
        assert!(matches!(
            documents.resolve(&mut request("", None)),
            Err(Unresolved::Invalid(_))
        ));
        assert!(matches!(
            documents.resolve(&mut request("", Some("abc"))),
            Err(Unresolved::Invalid(_))
        ));
    }

    #[test]
    fn the_cache_holds_a_bounded_number_of_bytes() {
        let mut cache = Cache::default();
        let big = "x".repeat(CACHE_BYTES / 4 + 1);
        for i in 0..8 {
            cache.remember(format!("{i}"), &big);
        }
        assert!(cache.bytes <= CACHE_BYTES);
        assert_eq!(cache.documents.len(), 3);
        assert!(cache.documents.contains_key("7") && !cache.documents.contains_key("0"));
    }

    #[test]
    fn trusted_documents_alone_run() {
        let query = "query Viewer { viewer { tenant { name } } }";
        let hash = sha256_hex(query);
        let manifest = serde_json::json!({ "format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{ "id": hash, "name": "Viewer", "type": "query", "body": query }] });
        let documents = PersistedDocuments::trusted(&manifest.to_string()).unwrap();
        let mut by_hash = request("", Some(&hash));
        assert_eq!(documents.resolve(&mut by_hash), Ok(()));
        assert_eq!(by_hash.query, query);
        assert_eq!(documents.resolve(&mut request(query, None)), Ok(()));
        assert_eq!(
            documents.resolve(&mut request("{ __typename }", None)),
            Err(Unresolved::NotTrusted)
        );
        let other = "{ __typename }";
        assert_eq!(
            documents.resolve(&mut request(other, Some(&sha256_hex(other)))),
            Err(Unresolved::NotTrusted),
            "a client cannot register documents"
        );
        assert_eq!(
            documents.resolve(&mut request("", Some(&sha256_hex(other)))),
            Err(Unresolved::NotFound)
        );
        // The plain map works too; a wrong hash in the file is refused.
        let map = serde_json::json!({ hash.clone(): query });
        assert!(PersistedDocuments::trusted(&map.to_string()).is_ok());
        let wrong = serde_json::json!({ sha256_hex("x"): query });
        assert!(PersistedDocuments::trusted(&wrong.to_string()).is_err());
        assert!(PersistedDocuments::trusted("[]").is_err());
    }
}
