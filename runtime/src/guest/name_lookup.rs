//! `wasi:sockets/ip-name-lookup` as a jail allows it: every name a guest resolves is
//! checked against its jail's `name-lookup` list, and refused (`access-denied`, and a log
//! line) unless listed; allowed lookups go to wasmtime-wasi's own implementation. The
//! addresses a lookup yields are still checked against the network allow-list on connect.

use super::state::GuestState;
use crate::jail::NameLookup;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::WasiSocketsView;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Replaces wasmtime-wasi's `ip-name-lookup` in `linker` (which must hold it already) with
/// the checked one.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = ip_name_lookup::add_to_linker::<GuestState, CheckedLookup>(linker, |state| {
        let (ctx, table, setup) = state.split();
        CheckedView {
            wasi: WasiParts { ctx, table },
            names: &setup.jail.name_lookup,
            guest: &setup.name,
        }
    });
    linker.allow_shadowing(false);
    result
}

struct CheckedLookup;

impl HasData for CheckedLookup {
    type Data<'a> = CheckedView<'a>;
}

/// The guest's WASI context, borrowed apart from the rest of its state.
struct WasiParts<'a> {
    ctx: &'a mut WasiCtx,
    table: &'a mut ResourceTable,
}

impl WasiView for WasiParts<'_> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.ctx,
            table: self.table,
        }
    }
}

/// What the checked lookup needs: WASI, and the guest's allowed names.
struct CheckedView<'a> {
    wasi: WasiParts<'a>,
    names: &'a NameLookup,
    guest: &'a str,
}

impl Host for CheckedView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !self.names.permits(&name) {
            tracing::warn!(
                "guest {}: refused to look up `{name}`: not in its jail's name-lookup list",
                self.guest
            );
            return Err(ErrorCode::AccessDenied.into());
        }
        self.wasi.sockets().resolve_addresses(network, name)
    }
}

impl HostResolveAddressStream for CheckedView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        self.wasi.sockets().resolve_next_address(stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.wasi.sockets(), stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.wasi.sockets(), stream)
    }
}

impl wasmtime_wasi::p2::bindings::sockets::network::Host for CheckedView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        self.wasi.sockets().convert_error_code(error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        self.wasi.sockets().network_error_code(err)
    }
}

impl wasmtime_wasi::p2::bindings::sockets::network::HostNetwork for CheckedView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::bindings::sockets::network::HostNetwork::drop(
            &mut self.wasi.sockets(),
            network,
        )
    }
}
