//! What a component imports and exports, learnt from the component itself and sorted into
//! what the node does with each: WASI (linked by wasmtime-wasi), the node's own `dstc:node`
//! interfaces, and application interfaces (routed over the network by function id).
//!
//! This is where the host stays generic: nothing here knows any application's interface.

use std::fmt::{self, Write};
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, Type};

/// The package of the node's own interfaces.
pub const NODE_PACKAGE: &str = "dstc:node/";

/// The interface a WASI command exports.
const CLI_RUN: &str = "wasi:cli/run";

/// The `dstc:node` interfaces a guest may import.
pub const NODE_IMPORTS: [&str; 7] = [
    "host",
    "timers",
    "readiness",
    "calls",
    "mailboxes",
    "runs",
    "group",
];

/// The `dstc:node` interfaces a guest may export to hear about events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventInterface {
    /// `lifecycle.init`, run once after instantiation.
    Lifecycle,
    /// `stdin-events.on-line`, every line of the node's stdin.
    Stdin,
    /// `timer-events.on-timer`, timers the guest set.
    Timer,
    /// `ready-events.on-ready`, pollables the guest watches.
    Ready,
    /// `run-events.on-run`, a run of calls to one of its functions in one entry.
    Run,
    /// `group-events.on-change`, a peer joined, left or changed its functions.
    Group,
}

impl EventInterface {
    /// How many event interfaces there are.
    pub const COUNT: usize = 6;

    /// Every event interface.
    pub const ALL: [EventInterface; Self::COUNT] = [
        EventInterface::Lifecycle,
        EventInterface::Stdin,
        EventInterface::Timer,
        EventInterface::Ready,
        EventInterface::Run,
        EventInterface::Group,
    ];

    /// The interface's name within `dstc:node`.
    pub fn interface(self) -> &'static str {
        match self {
            EventInterface::Lifecycle => "lifecycle",
            EventInterface::Stdin => "stdin-events",
            EventInterface::Timer => "timer-events",
            EventInterface::Ready => "ready-events",
            EventInterface::Run => "run-events",
            EventInterface::Group => "group-events",
        }
    }

    /// The one function of the interface.
    pub fn function(self) -> &'static str {
        match self {
            EventInterface::Lifecycle => "init",
            EventInterface::Stdin => "on-line",
            EventInterface::Timer => "on-timer",
            EventInterface::Ready => "on-ready",
            EventInterface::Run => "on-run",
            EventInterface::Group => "on-change",
        }
    }

    fn from_interface(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.interface() == name)
    }
}

/// What one named import or export of a component is to the node.
#[derive(Debug, Clone)]
pub enum Role {
    /// A WASI interface.
    Wasi,
    /// One of the node's own host interfaces (`dstc:node/host`, ...), imported.
    NodeImport,
    /// One of the node's event interfaces, exported.
    Events(EventInterface),
    /// `wasi:cli/run`: the component is a WASI command.
    CommandRun,
    /// An application interface: its functions are routed by function id.
    Application,
    /// Something the node cannot provide or use, with the reason.
    Unsupported(String),
}

/// A function of an interface.
#[derive(Debug, Clone)]
pub struct Function {
    /// The function's name within its interface.
    pub name: String,
    /// The function id: `namespace:package/interface#function`.
    pub id: String,
    /// The parameters, by name.
    pub params: Vec<(String, Type)>,
    /// The result types (none for a function called by multicast).
    pub results: Vec<Type>,
}

impl Function {
    fn new(interface: &str, name: &str, ty: &ComponentFunc) -> Self {
        Function {
            name: name.to_string(),
            id: function_id(interface, name),
            params: ty.params().map(|(n, t)| (n.to_string(), t)).collect(),
            results: ty.results().collect(),
        }
    }

    /// The function's WIT signature, such as `func(username: string, msg: string)`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {}", WitType(t)))
            .collect();
        let mut s = format!("func({})", params.join(", "));
        match self.results.as_slice() {
            [] => {}
            [one] => write!(s, " -> {}", WitType(one)).unwrap_or_default(),
            many => {
                let tys: Vec<String> = many.iter().map(|t| WitType(t).to_string()).collect();
                write!(s, " -> ({})", tys.join(", ")).unwrap_or_default()
            }
        }
        s
    }

    /// Whether any parameter holds something that cannot travel over the network.
    pub fn unsendable_param(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(_, t)| !sendable(t))
            .map(|(n, _)| n.as_str())
    }
}

/// The function id of `function` in `interface`.
pub fn function_id(interface: &str, function: &str) -> String {
    format!("{interface}#{function}")
}

/// One named import or export of a component.
#[derive(Debug, Clone)]
pub struct Interface {
    /// The name, such as `dhost:chat/chat` or `wasi:io/poll@0.2.6`.
    pub name: String,
    /// What it is to the node.
    pub role: Role,
    /// Its functions (empty for a bare function or a type).
    pub functions: Vec<Function>,
}

/// Everything a component imports and exports, sorted by role.
#[derive(Debug, Clone)]
pub struct World {
    /// The imports.
    pub imports: Vec<Interface>,
    /// The exports.
    pub exports: Vec<Interface>,
}

impl World {
    /// Reads the imports and exports of `component`.
    pub fn of(component: &Component, engine: &Engine) -> World {
        let ty = component.component_type();
        World {
            imports: ty
                .imports(engine)
                .map(|(name, item)| interface(name, item.ty, engine, false))
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(name, item)| interface(name, item.ty, engine, true))
                .collect(),
        }
    }

    /// Whether the component is a WASI command (exports `wasi:cli/run`).
    pub fn is_command(&self) -> bool {
        self.exports
            .iter()
            .any(|i| matches!(i.role, Role::CommandRun))
    }

    /// Whether the component exports the event interface `events`.
    pub fn exports_events(&self, events: EventInterface) -> bool {
        self.exports
            .iter()
            .any(|i| matches!(i.role, Role::Events(e) if e == events))
    }

    /// The application functions the guest imports: what it sends.
    pub fn sends(&self) -> impl Iterator<Item = &Function> {
        application_functions(&self.imports)
    }

    /// The application functions the guest exports: what it serves.
    pub fn serves(&self) -> impl Iterator<Item = &Function> {
        application_functions(&self.exports)
    }

    /// The names of the application interfaces the guest exports.
    pub fn served_interfaces(&self) -> Vec<String> {
        self.exports
            .iter()
            .filter(|i| matches!(i.role, Role::Application))
            .map(|i| i.name.clone())
            .collect()
    }
}

fn application_functions(interfaces: &[Interface]) -> impl Iterator<Item = &Function> {
    interfaces
        .iter()
        .filter(|i| matches!(i.role, Role::Application))
        .flat_map(|i| &i.functions)
}

fn interface(name: &str, item: ComponentItem, engine: &Engine, export: bool) -> Interface {
    let ComponentItem::ComponentInstance(instance) = item else {
        return Interface {
            name: name.to_string(),
            role: Role::Unsupported(
                "only interfaces (instances) are routed; a bare function, type or component is not"
                    .to_string(),
            ),
            functions: Vec::new(),
        };
    };
    let functions: Vec<Function> = instance
        .exports(engine)
        .filter_map(|(fname, item)| match item.ty {
            ComponentItem::ComponentFunc(f) => Some(Function::new(name, fname, &f)),
            _ => None,
        })
        .collect();
    let unversioned = name.split('@').next().unwrap_or(name);
    let role = if name.starts_with("wasi:") {
        if export && unversioned == CLI_RUN {
            Role::CommandRun
        } else {
            Role::Wasi
        }
    } else if let Some(iface) = unversioned.strip_prefix(NODE_PACKAGE) {
        match (export, EventInterface::from_interface(iface)) {
            (true, Some(events)) => Role::Events(events),
            (false, None) if NODE_IMPORTS.contains(&iface) => Role::NodeImport,
            (true, None) => Role::Unsupported(format!(
                "dstc:node/{iface} is not an event interface a guest can export"
            )),
            (false, _) => Role::Unsupported(format!(
                "dstc:node/{iface} is not an interface this node provides"
            )),
        }
    } else if !unversioned.contains(':') || !unversioned.contains('/') {
        // (componentize-py leaves such an export, `exports`, for its build-time start-up.)
        Role::Unsupported(format!(
            "`{name}` is a plain name, not a package's interface \
             (namespace:package/interface): only those are routed"
        ))
    } else {
        Role::Application
    };
    Interface {
        name: name.to_string(),
        role,
        functions,
    }
}

/// Whether values of type `ty` can be encoded as CBOR and sent to another node.
pub fn sendable(ty: &Type) -> bool {
    match ty {
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            false
        }
        Type::List(l) => sendable(&l.ty()),
        Type::FixedLengthList(l) => sendable(&l.ty()),
        Type::Map(m) => sendable(&m.key()) && sendable(&m.value()),
        Type::Record(r) => r.fields().all(|f| sendable(&f.ty)),
        Type::Tuple(t) => t.types().all(|t| sendable(&t)),
        Type::Variant(v) => v.cases().all(|c| c.ty.as_ref().is_none_or(sendable)),
        Type::Option(o) => sendable(&o.ty()),
        Type::Result(r) => {
            r.ok().as_ref().is_none_or(sendable) && r.err().as_ref().is_none_or(sendable)
        }
        _ => true,
    }
}

/// Displays a component type in WIT syntax. Components keep no type names, so records,
/// variants, enums and flags are written out in full.
pub struct WitType<'a>(pub &'a Type);

impl fmt::Display for WitType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: Vec<String>| f.write_str(&items.join(", "));
        match self.0 {
            Type::Bool => f.write_str("bool"),
            Type::S8 => f.write_str("s8"),
            Type::U8 => f.write_str("u8"),
            Type::S16 => f.write_str("s16"),
            Type::U16 => f.write_str("u16"),
            Type::S32 => f.write_str("s32"),
            Type::U32 => f.write_str("u32"),
            Type::S64 => f.write_str("s64"),
            Type::U64 => f.write_str("u64"),
            Type::Float32 => f.write_str("f32"),
            Type::Float64 => f.write_str("f64"),
            Type::Char => f.write_str("char"),
            Type::String => f.write_str("string"),
            Type::List(l) => write!(f, "list<{}>", WitType(&l.ty())),
            Type::FixedLengthList(l) => write!(f, "list<{}, {}>", WitType(&l.ty()), l.len()),
            Type::Map(m) => write!(f, "map<{}, {}>", WitType(&m.key()), WitType(&m.value())),
            Type::Record(r) => {
                f.write_str("record { ")?;
                list(
                    f,
                    r.fields()
                        .map(|fl| format!("{}: {}", fl.name, WitType(&fl.ty)))
                        .collect(),
                )?;
                f.write_str(" }")
            }
            Type::Tuple(t) => {
                f.write_str("tuple<")?;
                list(f, t.types().map(|t| WitType(&t).to_string()).collect())?;
                f.write_str(">")
            }
            Type::Variant(v) => {
                f.write_str("variant { ")?;
                list(
                    f,
                    v.cases()
                        .map(|c| match &c.ty {
                            Some(t) => format!("{}({})", c.name, WitType(t)),
                            None => c.name.to_string(),
                        })
                        .collect(),
                )?;
                f.write_str(" }")
            }
            Type::Enum(e) => write!(f, "enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
            Type::Flags(fl) => {
                write!(
                    f,
                    "flags {{ {} }}",
                    fl.names().collect::<Vec<_>>().join(", ")
                )
            }
            Type::Option(o) => write!(f, "option<{}>", WitType(&o.ty())),
            Type::Result(r) => match (r.ok(), r.err()) {
                (None, None) => f.write_str("result"),
                (Some(ok), None) => write!(f, "result<{}>", WitType(&ok)),
                (None, Some(err)) => write!(f, "result<_, {}>", WitType(&err)),
                (Some(ok), Some(err)) => write!(f, "result<{}, {}>", WitType(&ok), WitType(&err)),
            },
            Type::Own(_) => f.write_str("own<resource>"),
            Type::Borrow(_) => f.write_str("borrow<resource>"),
            Type::Future(_) => f.write_str("future"),
            Type::Stream(_) => f.write_str("stream"),
            Type::ErrorContext => f.write_str("error-context"),
        }
    }
}
