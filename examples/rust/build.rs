// Link arguments of a dependency's build script do not reach this binary, so the rpath to
// libconvstate_c comes from the directory the convstate crate publishes (its `links` metadata).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_CONVSTATE_C_LIB_DIR");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if let Ok(dir) = std::env::var("DEP_CONVSTATE_C_LIB_DIR") {
        if target_os != "windows" {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
