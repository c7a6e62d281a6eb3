//! Builds the web console into `OUT_DIR`: installs the locked npm dependencies (`npm ci`, into
//! `OUT_DIR`, never into the source tree), bundles `web/src` with esbuild, names each output by
//! its content hash (so the server can let browsers cache it forever), compresses it with gzip
//! and brotli, and writes `assets.rs`, the table `src/lib.rs` includes.
//!
//! It reruns only when the web sources or the lockfile change, so an ordinary `cargo test` does
//! not touch npm.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A build failure: printed as one clear message instead of a panic backtrace.
type Res<T> = Result<T, String>;

fn main() {
    if let Err(e) = run() {
        eprintln!("\nerror building the web console (crates/ui): {e}\n");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(env("OUT_DIR")?);
    let web = manifest.join("web");
    for p in ["src", "index.html", "package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed=web/{p}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TOCSIN_NPM");

    let npm_dir = out.join("npm");
    install(&web, &npm_dir)?;
    let dist = out.join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist).map_err(|e| format!("clearing {}: {e}", dist.display()))?;
    }
    bundle(&web, &npm_dir, &dist)?;
    embed(&web, &dist, &out)
}

fn env(k: &str) -> Res<String> {
    std::env::var(k).map_err(|_| format!("{k} is not set (is this run by cargo?)"))
}

fn npm() -> String {
    std::env::var("TOCSIN_NPM").unwrap_or_else(|_| "npm".to_string())
}

/// `npm ci` in a copy of package.json and the lockfile under OUT_DIR; skipped when the installed
/// tree was made from the same lockfile.
fn install(web: &Path, npm_dir: &Path) -> Res<()> {
    let lock = read(&web.join("package-lock.json"))?;
    let stamp = npm_dir.join("installed-from.lock");
    if std::fs::read(&stamp).ok().as_deref() == Some(&lock[..])
        && npm_dir.join("node_modules/esbuild").is_dir()
    {
        return Ok(());
    }
    let version = Command::new(npm()).arg("--version").output();
    match version {
        Ok(o) if o.status.success() => {}
        _ => {
            return Err(format!(
                "`{}` was not found or does not run. Building Tocsin needs Node.js (18 or later) \
                 and npm, which fetch and bundle the console's libraries at build time. Install \
                 them (Debian/Ubuntu: `apt-get install nodejs npm`), or point TOCSIN_NPM at an npm \
                 binary.",
                npm()
            ))
        }
    }
    std::fs::create_dir_all(npm_dir).map_err(|e| format!("creating {}: {e}", npm_dir.display()))?;
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(web.join(f), npm_dir.join(f))
            .map_err(|e| format!("copying web/{f} to {}: {e}", npm_dir.display()))?;
    }
    // No install scripts: esbuild finds its platform package without its postinstall check, and
    // nothing else here needs one.
    let status = Command::new(npm())
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(npm_dir)
        .status()
        .map_err(|e| format!("running `npm ci`: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`npm ci` in {} failed ({status}); it needs the npm registry (or a filled npm cache) \
             to fetch the packages crates/ui/web/package-lock.json names",
            npm_dir.display()
        ));
    }
    std::fs::write(&stamp, &lock).map_err(|e| format!("writing {}: {e}", stamp.display()))
}

fn bundle(web: &Path, npm_dir: &Path, dist: &Path) -> Res<()> {
    let modules = npm_dir.join("node_modules");
    let esbuild = modules.join("esbuild/bin/esbuild");
    let status = Command::new("node")
        .arg(&esbuild)
        .arg(web.join("src/main.js"))
        .args([
            "--bundle",
            "--minify",
            "--format=esm",
            "--target=es2020",
            "--entry-names=app",
            "--legal-comments=none",
            "--log-level=warning",
        ])
        .arg(format!("--outdir={}", dist.display()))
        // The packages live under OUT_DIR, not beside the sources.
        .env("NODE_PATH", &modules)
        .status()
        .map_err(|e| format!("running esbuild ({}): {e}", esbuild.display()))?;
    if !status.success() {
        return Err(format!("esbuild failed ({status}); see its messages above"));
    }
    Ok(())
}

fn read(p: &Path) -> Res<Vec<u8>> {
    std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))
}

/// FNV-1a, 64 bits: enough to tell one build's bundle from the next in a file name.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn gzip(data: &[u8]) -> Res<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).map_err(|e| format!("gzip: {e}"))?;
    e.finish().map_err(|e| format!("gzip: {e}"))
}

fn brotli(data: &[u8]) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)
        .map_err(|e| format!("brotli: {e}"))?;
    Ok(out)
}

fn embed(web: &Path, dist: &Path, out: &Path) -> Res<()> {
    // Outputs of earlier builds (other hashes) would only pile up here.
    let old = std::fs::read_dir(out).map_err(|e| format!("listing {}: {e}", out.display()))?;
    for entry in old.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("app.") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    let mut names = Vec::new();
    for (file, mime) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ] {
        let data = read(&dist.join(file))?;
        let hash = fnv(&data);
        let (stem, ext) = file.split_once('.').unwrap_or((file, ""));
        let name = format!("{stem}.{:012x}.{ext}", hash >> 16);
        let base = out.join(&name);
        std::fs::write(&base, &data).map_err(|e| format!("writing {}: {e}", base.display()))?;
        let gz = out.join(format!("{name}.gz"));
        std::fs::write(&gz, gzip(&data)?).map_err(|e| format!("writing {}: {e}", gz.display()))?;
        let br = out.join(format!("{name}.br"));
        std::fs::write(&br, brotli(&data)?)
            .map_err(|e| format!("writing {}: {e}", br.display()))?;
        let _ = writeln!(
            table,
            "    Asset {{ name: {name:?}, content_type: {mime:?}, etag: \"\\\"{hash:016x}\\\"\", \
             identity: include_bytes!({base:?}), gzip: include_bytes!({gz:?}), \
             brotli: include_bytes!({br:?}) }},"
        );
        names.push(name);
    }
    table.push_str("];\n");
    let index = String::from_utf8(read(&web.join("index.html"))?)
        .map_err(|_| "web/index.html is not UTF-8".to_string())?;
    for marker in ["{{APP_JS}}", "{{APP_CSS}}", "{{PREFIX}}"] {
        if !index.contains(marker) {
            return Err(format!("web/index.html lacks the {marker} placeholder"));
        }
    }
    let index = index
        .replace("{{APP_JS}}", &names[0])
        .replace("{{APP_CSS}}", &names[1]);
    let _ = writeln!(table, "pub const INDEX_HTML: &str = {index:?};");
    let rs = out.join("assets.rs");
    std::fs::write(&rs, table).map_err(|e| format!("writing {}: {e}", rs.display()))
}
