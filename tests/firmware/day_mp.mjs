// The scripted day (bandday) under real MicroPython, with a true heap high-water figure.
//
//   node tests/firmware/day_mp.mjs [BOARD]
//
// The WebAssembly port only really collects garbage back at the JavaScript top level (its
// gc.collect() inside Python merely requests a collection), so gc.mem_alloc() read inside one long
// runPython call counts every allocation since the start. This driver therefore runs each step of
// the day as its own runPython call and reads gc.mem_alloc() in the next call, after the collection.
// Prints the day's summary line; "heap_base" is the live heap after importing hugproto + hugband
// (their bytecode, which a band with frozen modules keeps in flash instead).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const board = process.argv[2] || "xiao_esp32c3";
const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function mkdirs(path) {
  let cur = "";
  for (const part of path.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copyTree(src, dest) {
  if (statSync(src).isDirectory()) {
    mkdirs(dest);
    for (const name of readdirSync(src)) {
      if (name === "__pycache__" || name.endsWith(".pyc")) continue;
      copyTree(join(src, name), dest + "/" + name);
    }
  } else {
    mp.FS.writeFile(dest, readFileSync(src));
  }
}

copyTree(join(repo, "protocol", "hugproto"), "/lib/hugproto");
copyTree(join(repo, "firmware", "hugband"), "/lib/hugband");
copyTree(join(repo, "tests", "firmware", "bandday.py"), "/lib/bandday.py");

function py(code) {
  try {
    mp.runPython(code);
  } catch (e) {
    process.stderr.write(`${e.type || "Error"}: ${e.message}\n`);
    process.exit(1);
  }
}

py("import gc\nimport bandday as day\ngc.collect()");
py("base = gc.mem_alloc()\nhigh = base\npoints = 0");
py(`d = day.Day(${JSON.stringify(board)})\nn = len(d)\ngc.collect()`);
const n = mp.globals.get("n");
for (let i = -1; i < n; i++) {
  if (i >= 0) py(`d.step(${i})\ngc.collect()`);
  py("m = gc.mem_alloc()\nif m > high: high = m\npoints += 1");
}
py("print(day.summary_line(d.result, high, base))\nprint('heap checkpoints', points)");
