//! The files target rows name and the config's defaults, each read once and shared by the
//! rows naming it while the loader thread (or a CLI command) validates them: CA bundles,
//! client certificates, the default proxy and `NoProxy`.

use std::sync::Arc;

use super::Error;
use crate::base::ca::CaFiles;
use crate::base::client_cert::ClientIdentities;
use crate::base::proxy::{NoProxy, ProxyUrl};
use crate::base::secrets::Secrets;

/// What validating a row reads besides the row: the files rows name, each read once and
/// shared by the rows naming it, and the config's defaults. Owned by the loader thread (or a
/// CLI command).
#[derive(Debug, Default)]
pub struct Shared {
    /// CA bundles (`ca_file`, `[settings] CaFile`), read again at each loader pass.
    pub cas: CaFiles,
    /// Client certificates (`client_cert`, `client_key`), read again when they change.
    pub identities: ClientIdentities,
    /// `[settings] Proxy`, for rows without a `proxy_url`.
    pub proxy: Option<Arc<ProxyUrl>>,
    /// `[settings] NoProxy`: the hosts reached without the default proxy.
    pub no_proxy: Arc<NoProxy>,
}

impl Shared {
    /// What the rows of a daemon (or CLI command) reading `config` share.
    pub fn new(config: &crate::config::Config) -> Shared {
        Shared {
            cas: CaFiles::new(config.ca_file.clone()),
            identities: ClientIdentities::default(),
            proxy: config.proxy.clone().map(Arc::new),
            no_proxy: config.no_proxy.clone(),
        }
    }

    /// The proxy of a row whose `proxy_url` is `own` and whose host is `host`: its own (none
    /// when it says `none`), its `${secret:NAME}` references filled in from `secrets`; else
    /// the default unless `NoProxy` names the host.
    pub(super) fn proxy(
        &self,
        own: Option<&str>,
        host: &str,
        secrets: &Secrets,
    ) -> Result<Option<Arc<ProxyUrl>>, Error> {
        match own.map(str::trim).filter(|p| !p.is_empty()) {
            Some(none) if none.eq_ignore_ascii_case("none") => Ok(None),
            Some(own) => {
                let expanded = secrets
                    .expand(own)
                    .map_err(|e| Error::Proxy(e.to_string()))?;
                ProxyUrl::parse(&expanded)
                    .map(|p| Some(Arc::new(p)))
                    .map_err(Error::Proxy)
            }
            None if self.no_proxy.matches(host) => Ok(None),
            None => Ok(self.proxy.clone()),
        }
    }
}
