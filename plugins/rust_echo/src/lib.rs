//! rust_echo — the line echo (plugins/echo) as a Rust plugin: a `cdylib` that speaks the C
//! ABI of include/wharf.h with no crate from outside. The declarations below are written by
//! hand for the subset of wharf.h this plugin uses (bindgen, which Debian packages, would
//! generate the whole header the same way). Build it with plain rustc or cargo:
//!
//!     rustc --edition 2021 --crate-type cdylib -O plugins/rust_echo/src/lib.rs -o librust_echo.so
//!     cargo build --release --manifest-path plugins/rust_echo/Cargo.toml
//!
//! What it shows: the instance is a `Box` handed to the host as a raw pointer and taken back
//! in `shutdown`; callbacks are `extern "C"` functions that never unwind into the host
//! (a panic aborts, see Cargo.toml, and nothing here panics); borrowed read data is a slice
//! valid for the callback only.
//!
//! Config: max_bytes (delimiter included, default 65536), as echo.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_void};

// ---- The subset of wharf.h used here (layouts must match the header exactly) ----

const WHARF_ABI_MAJOR: u16 = 1;
const WHARF_ABI_MINOR: u16 = 5;
const WHARF_OK: i32 = 0;
const WHARF_E_INVALID: i32 = -5;

#[repr(C)]
pub struct wharf_stream {
    _opaque: [u8; 0],
}

type wharf_read_cb = extern "C" fn(*mut c_void, *mut wharf_stream, i32, *const u8, usize);
type wharf_write_cb = extern "C" fn(*mut c_void, *mut wharf_stream, i32);

/// The host function table, up to `write` (the fields after it are never read here).
#[repr(C)]
pub struct wharf_host_api {
    struct_size: u32,
    abi_major: u16,
    abi_minor: u16,
    log: *const c_void,
    log_enabled: *const c_void,
    strerror: *const c_void,
    read_bytes: *const c_void,
    read_until: extern "C" fn(*mut wharf_stream, *const u8, usize, usize, wharf_read_cb, *mut c_void) -> i32,
    read_until_regex: *const c_void,
    read_until_close: *const c_void,
    write: extern "C" fn(*mut wharf_stream, *const u8, usize, Option<wharf_write_cb>, *mut c_void) -> i32,
}

/// wharf_init_args, up to loop_count.
#[repr(C)]
pub struct wharf_init_args {
    struct_size: u32,
    flags: u32,
    instance: *const c_void,
    instance_name: *const c_char,
    instance_name_len: usize,
    config_json: *const c_char,
    config_json_len: usize,
    loop_index: u32,
    loop_count: u32,
}

#[repr(C)]
pub struct wharf_plugin_descriptor {
    struct_size: u32,
    abi_major: u16,
    abi_minor: u16,
    min_host_abi_minor: u16,
    reserved: u16,
    name: *const c_char,
    version: *const c_char,
    description: *const c_char,
    init: extern "C" fn(*const wharf_host_api, *const wharf_init_args, *mut *mut c_void, *mut c_char, usize) -> i32,
    handle_stream: extern "C" fn(*mut c_void, *mut wharf_stream) -> i32,
    shutdown: Option<extern "C" fn(*mut c_void)>,
}

/// The descriptor is immutable static data; raw pointers make Rust ask for this promise.
struct Descriptor(wharf_plugin_descriptor);
unsafe impl Sync for Descriptor {}

// ---- The plugin ----

struct Instance {
    host: &'static wharf_host_api,
    max_bytes: usize,
}

fn read_line(instance: *mut Instance, stream: *mut wharf_stream) {
    let this = unsafe { &*instance };
    // On failure the stream is closing and the host notifies its close: nothing to undo.
    (this.host.read_until)(stream, b"\n".as_ptr(), 1, this.max_bytes, on_line, instance as *mut c_void);
}

extern "C" fn on_line(userdata: *mut c_void, stream: *mut wharf_stream, status: i32, line: *const u8, len: usize) {
    if status != WHARF_OK {
        return; // closed, or over max_bytes: the host closes the stream
    }
    let instance = userdata as *mut Instance;
    let this = unsafe { &*instance };
    if (this.host.write)(stream, line, len, None, std::ptr::null_mut()) == WHARF_OK {
        read_line(instance, stream);
    }
}

/// `{}` or `{"max_bytes": N}`; anything else is refused with a message.
fn parse_max_bytes(json: &[u8]) -> Result<usize, &'static str> {
    let text = std::str::from_utf8(json).map_err(|_| "config is not UTF-8")?;
    let key = "\"max_bytes\"";
    let position = match text.find(key) {
        Some(position) => position,
        None if text.contains('"') => return Err("unknown config key (rust_echo takes only max_bytes)"),
        None => return Ok(65536),
    };
    let rest = &text[position + key.len()..];
    if text[..position].contains('"') || rest.contains('"') {
        return Err("unknown config key (rust_echo takes only max_bytes)");
    }
    let digits: String = rest.chars().skip_while(|c| *c == ':' || c.is_whitespace()).take_while(|c| c.is_ascii_digit()).collect();
    match digits.parse::<usize>() {
        Ok(value) if value >= 1 && value <= 1 << 40 => Ok(value),
        _ => Err("config key 'max_bytes': expected an integer 1-1099511627776"),
    }
}

extern "C" fn init(host: *const wharf_host_api, args: *const wharf_init_args, instance_out: *mut *mut c_void,
                   error: *mut c_char, error_len: usize) -> i32 {
    let args = unsafe { &*args };
    let json = unsafe { std::slice::from_raw_parts(args.config_json as *const u8, args.config_json_len) };
    match parse_max_bytes(json) {
        Ok(max_bytes) => {
            let instance = Box::new(Instance { host: unsafe { &*host }, max_bytes });
            unsafe { *instance_out = Box::into_raw(instance) as *mut c_void };
            WHARF_OK
        }
        Err(message) => {
            if error_len > 0 {
                let count = message.len().min(error_len - 1);
                unsafe {
                    std::ptr::copy_nonoverlapping(message.as_ptr(), error as *mut u8, count);
                    *error.add(count) = 0;
                }
            }
            WHARF_E_INVALID
        }
    }
}

extern "C" fn handle_stream(instance: *mut c_void, stream: *mut wharf_stream) -> i32 {
    read_line(instance as *mut Instance, stream);
    WHARF_OK
}

/// Called after every stream of the instance has been notified closed: the Box comes back.
extern "C" fn shutdown(instance: *mut c_void) {
    if !instance.is_null() {
        drop(unsafe { Box::from_raw(instance as *mut Instance) });
    }
}

static DESCRIPTOR: Descriptor = Descriptor(wharf_plugin_descriptor {
    struct_size: std::mem::size_of::<wharf_plugin_descriptor>() as u32,
    abi_major: WHARF_ABI_MAJOR,
    abi_minor: WHARF_ABI_MINOR,
    min_host_abi_minor: 0,
    reserved: 0,
    name: b"rust_echo\0".as_ptr() as *const c_char,
    version: b"1.0.0\0".as_ptr() as *const c_char,
    description: b"Line echo in Rust: a cdylib on the C ABI, no outside crates\0".as_ptr() as *const c_char,
    init,
    handle_stream,
    shutdown: Some(shutdown),
});

/// The one symbol the host looks up (WHARF_PLUGIN_ENTRY).
#[no_mangle]
pub extern "C" fn wharf_plugin_v1() -> *const wharf_plugin_descriptor {
    &DESCRIPTOR.0
}
