// Import cost of a band build's .mpy set on the 32-bit MicroPython WebAssembly build.
//
//   node tests/bench/import_mpy.mjs BUILD_DIR     (BUILD_DIR from `hugbutton band build`)
//
// Loads exactly BUILD_DIR/lib/**.mpy and prints "import_bytes=N modules=M". The board modules the
// firmware imports (bluetooth, machine: C on a band) are empty stand-ins imported before the
// baseline. The WebAssembly port collects garbage only back at the JavaScript top level, so each step
// is its own runPython call.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const build = process.argv[2];
const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
const modules = [];
try { mp.FS.mkdir("/lib"); } catch (e) { /* exists */ }
for (const pkg of readdirSync(join(build, "lib"))) {
  mp.FS.mkdir("/lib/" + pkg);
  for (const name of readdirSync(join(build, "lib", pkg))) {
    if (!statSync(join(build, "lib", pkg, name)).isFile() || !name.endsWith(".mpy")) continue;
    mp.FS.writeFile(`/lib/${pkg}/${name}`, readFileSync(join(build, "lib", pkg, name)));
    modules.push(name === "__init__.mpy" ? pkg : `${pkg}.${name.slice(0, -4)}`);
  }
}
mp.FS.writeFile("/lib/bluetooth.py", "");
mp.FS.writeFile("/lib/machine.py", "");
mp.runPython("import sys, gc\nsys.path.insert(0, '/lib')\nimport bluetooth, machine, asyncio\ngc.collect()");
mp.runPython("base = gc.mem_alloc()");
mp.runPython(modules.map((m) => `import ${m}`).join("\n"));
mp.runPython("gc.collect()");
mp.runPython(`print("import_bytes=%d modules=%d" % (gc.mem_alloc() - base, ${modules.length}))`);
