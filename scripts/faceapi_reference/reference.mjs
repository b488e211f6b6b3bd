// face-api.js's own age network, in Node on the wasm backend: reads N 112×112 RGB faces (raw uint8,
// N·112·112·3 bytes) and writes their ages, one JSON list, to stdout.
// Usage: node reference.mjs FACES.u8   (the Keras port's test and scripts/faceapi_parity.py call it)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const here = path.dirname(new URL(import.meta.url).pathname);
const modelDir = path.join(here, 'node_modules/@vladmandic/face-api/model');
const SIZE = 112;

async function main() {
  wasm.setWasmPaths(path.join(here, 'node_modules/@tensorflow/tfjs-backend-wasm/dist') + '/');
  await tf.setBackend('wasm');
  await tf.ready();
  await faceapi.nets.ageGenderNet.loadFromDisk(modelDir);
  const bytes = fs.readFileSync(process.argv[2]);
  const n = bytes.length / (SIZE * SIZE * 3);
  if (!Number.isInteger(n)) throw new Error(`${process.argv[2]}: not a whole number of ${SIZE}x${SIZE} RGB faces`);
  const ages = [];
  for (let i = 0; i < n; i += 1) {
    const face = tf.tensor3d(bytes.subarray(i * SIZE * SIZE * 3, (i + 1) * SIZE * SIZE * 3), [SIZE, SIZE, 3], 'int32');
    const out = await faceapi.nets.ageGenderNet.predictAgeAndGender(face);
    ages.push(out.age);
    face.dispose();
  }
  process.stdout.write(`${JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version.tfjs, ages })}\n`);
}

main().catch((err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });
