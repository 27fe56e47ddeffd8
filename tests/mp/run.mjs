// Run Python code under real MicroPython (the official WebAssembly build, npm package
// @micropython/micropython-webassembly-pyscript) with project directories copied into its filesystem.
//
//   node tests/mp/run.mjs [--lib SRC[:DEST]]... [--files-json FILE] [--cwd DIR] (-c CODE | SCRIPT.py)
//
//   --lib SRC[:DEST]   copy a file or directory tree (skipping __pycache__ and *.pyc) into the
//                      MicroPython filesystem at DEST (default /lib/<basename of SRC>); /lib is on
//                      sys.path, so `--lib protocol/hugproto` makes `import hugproto` work.
//   --files-json FILE  a JSON object {"path": "text", ...} of extra files to create; relative paths
//                      are taken under /lib.
//   --cwd DIR          change directory (inside MicroPython) before running.
//   -c CODE            run CODE;  SCRIPT.py  run that host file (as __main__, with its real name in
//                      tracebacks).
//
// Output of the Python code goes to stdout. Exit status: 0 on success; on an uncaught Python exception
// the exception type and MicroPython's traceback are printed to stderr and the status is 1;
// SystemExit(n) exits with n; 2 means a usage error of this runner.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

function usage(msg) {
  process.stderr.write(`run.mjs: ${msg}\n`);
  process.stderr.write("usage: node tests/mp/run.mjs [--lib SRC[:DEST]]... [--files-json FILE] [--cwd DIR] (-c CODE | SCRIPT.py)\n");
  process.exit(2);
}

const libs = [];
const fileMaps = [];
let cwd = null;
let code = null;
let script = null;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const next = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  if (a === "--lib") libs.push(next());
  else if (a === "--files-json") fileMaps.push(next());
  else if (a === "--cwd") cwd = next();
  else if (a === "-c") code = next();
  else if (a.startsWith("-")) usage(`unknown option ${a}`);
  else if (script === null) script = a;
  else usage(`unexpected argument ${a}`);
}
if ((code === null) === (script === null)) usage("give exactly one of -c CODE or SCRIPT.py");

const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function mkdirs(path) {
  let cur = "";
  for (const part of path.split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      mp.FS.mkdir(cur);
    } catch (e) {
      // EEXIST is fine; anything else shows up when writing the file.
    }
  }
}

function writeFile(dest, data) {
  mkdirs(dest.split("/").slice(0, -1).join("/"));
  mp.FS.writeFile(dest, data);
}

function copyTree(src, dest) {
  let st;
  try {
    st = statSync(src);
  } catch (e) {
    usage(`--lib ${src}: ${e.message}`);
  }
  if (st.isDirectory()) {
    mkdirs(dest);
    for (const name of readdirSync(src).sort()) {
      if (name === "__pycache__" || name.endsWith(".pyc") || name.startsWith(".")) continue;
      copyTree(join(src, name), `${dest}/${name}`);
    }
  } else if (st.isFile()) {
    writeFile(dest, readFileSync(src));
  }
}

mkdirs("/lib");
for (const spec of libs) {
  const colon = spec.indexOf(":");
  const src = colon >= 0 ? spec.slice(0, colon) : spec;
  const dest = colon >= 0 ? spec.slice(colon + 1) : `/lib/${basename(resolve(src))}`;
  copyTree(src, dest);
}
for (const mapFile of fileMaps) {
  const files = JSON.parse(readFileSync(mapFile, "utf8"));
  for (const [path, text] of Object.entries(files)) {
    writeFile(path.startsWith("/") ? path : `/lib/${path}`, text);
  }
}

let program;
if (script !== null) {
  const dest = `/__main__/${basename(script)}`;
  writeFile(dest, readFileSync(script));
  program = `exec(compile(open(${JSON.stringify(dest)}).read(), ${JSON.stringify(dest)}, "exec"), {"__name__": "__main__"})`;
} else {
  program = code;
}
if (cwd !== null) {
  mkdirs(cwd);
  program = `import os\nos.chdir(${JSON.stringify(cwd)})\ndel os\n` + program;
}

try {
  mp.runPython(program);
} catch (e) {
  if (e && e.type === "SystemExit") {
    // The traceback's last line is "SystemExit" or "SystemExit: <arg>".
    const last = String(e.message).trim().split("\n").pop();
    const arg = last.includes(":") ? last.slice(last.indexOf(":") + 1).trim() : "";
    if (arg === "" || arg === "None" || arg === "0") process.exit(0);
    const n = Number(arg);
    if (!Number.isInteger(n)) process.stderr.write(arg + "\n");
    process.exit(Number.isInteger(n) ? n : 1);
  }
  if (e && e.type) {
    process.stderr.write(`MicroPython raised ${e.type}\n${e.message}`);
    if (!String(e.message).endsWith("\n")) process.stderr.write("\n");
    process.exit(1);
  }
  process.stderr.write(`run.mjs: MicroPython runtime error: ${e && e.stack ? e.stack : e}\n`);
  process.exit(3);
}
process.exit(0);
