// Make dist/engine.cjs.cache: V8's code cache of the engine bundle, so that
// an engine thread need not parse and compile it again (src/engine/host.ts
// loads the bundle with it; a cache this Node cannot use is ignored).
'use strict';
const vm = require('node:vm');
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

const file = path.resolve(process.argv[2]);
const src = fs.readFileSync(file, 'utf8');
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${src}\n})`, { filename: file });
const m = { exports: {} };
// Running the top level compiles what loading compiles, which the cache then holds too.
script.runInThisContext()(m.exports, createRequire(file), m, file, path.dirname(file));
fs.writeFileSync(`${file}.cache`, script.createCachedData());
