//! Links the convstate C library (libconvstate_c) from the directory named by the environment
//! variable CONVSTATE_LIB_DIR, e.g. `CONVSTATE_LIB_DIR=$PWD/build/plain/lib` in the repository.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=CONVSTATE_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");

    let dir = match env::var_os("CONVSTATE_LIB_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => panic!(
            "\n\nconvstate: the environment variable CONVSTATE_LIB_DIR is not set.\n\
             Set it to the directory holding libconvstate_c.so (and libconvstate.so), e.g.\n\
             \n    CONVSTATE_LIB_DIR=/path/to/convstate/build/plain/lib cargo build\n\n"
        ),
    };
    if !dir.is_dir() {
        panic!(
            "\n\nconvstate: CONVSTATE_LIB_DIR={} is not a directory.\n\
             Build the C library first (it produces libconvstate_c.so) and point CONVSTATE_LIB_DIR at its directory.\n\n",
            dir.display()
        );
    }
    let dir = dir.canonicalize().unwrap_or(dir);
    let found = ["libconvstate_c.so", "libconvstate_c.dylib", "convstate_c.lib", "libconvstate_c.a"]
        .iter()
        .any(|name| dir.join(name).exists());
    if !found {
        println!(
            "cargo:warning=CONVSTATE_LIB_DIR={} holds no libconvstate_c library; linking will likely fail",
            dir.display()
        );
    }
    let dir = dir
        .to_str()
        .unwrap_or_else(|| panic!("convstate: CONVSTATE_LIB_DIR must be valid UTF-8, got {}", dir.display()));
    if dir.contains(',') {
        panic!("convstate: CONVSTATE_LIB_DIR must not contain ',' (it is passed to the linker as -Wl,-rpath,DIR)");
    }

    println!("cargo:rustc-link-search=native={dir}");
    println!("cargo:rustc-link-lib=dylib=convstate_c");
    // Tests, examples and binaries of this package find the library without LD_LIBRARY_PATH.
    // (Link arguments do not propagate to dependents; they read DEP_CONVSTATE_C_LIB_DIR below.)
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "windows" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    // Metadata for dependents' build scripts (this package has `links = "convstate_c"`).
    println!("cargo:lib_dir={dir}");
}
