// smplcast viewer: subscribes to pose messages over MQTT-over-WebSocket and draws each tracked
// person's skeleton in 3D (three.js, orbit controls), with the track id, message rate, latency
// and the person boxes on the camera image. Decodes the wire format of docs/WIRE.md.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import mqtt from "./vendor/mqtt.esm.js";
import { PARENTS, approximateJoints } from "./skeleton.js";

const $ = (id) => document.getElementById(id);

// Settings: config.json (written by `smplcast view`), then the query string.
async function settings() {
  let config = { ws: `ws://${location.hostname || "127.0.0.1"}:9001`, prefix: "smplcast", device: "+" };
  try {
    const r = await fetch("config.json");
    if (r.ok) config = { ...config, ...(await r.json()) };
  } catch (_) { /* opened from a file: defaults and the query string */ }
  for (const [k, v] of new URLSearchParams(location.search)) config[k] = v;
  return config;
}

// RFC 8746 tag 84: binary16 little-endian typed array → numbers.
function halves(value) {
  if (Array.isArray(value)) return value;
  if (value && value.tag === 84) value = value.value;
  if (value && typeof Float16Array !== "undefined" && value instanceof Float16Array) return Array.from(value);
  const bytes = value instanceof Uint8Array ? value : new Uint8Array(value.buffer ?? value);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = [];
  for (let i = 0; i + 1 < bytes.length; i += 2) out.push(f16(view.getUint16(i, true)));
  return out;
}

function f16(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// Keep tag 84 as raw bytes whatever cbor-x would make of it.
CBOR.addExtension({ tag: 84, decode: (bytes) => ({ tag: 84, value: bytes }) });

function decode(payload) {
  const msg = CBOR.decode(payload);
  if (msg.v !== 1) throw new Error(`schema version ${msg.v}`);
  for (const p of msg.people) {
    p.pose = halves(p.pose);
    p.shape = halves(p.shape);
    if (p.joints !== undefined) p.joints = halves(p.joints);
  }
  return msg;
}

// three.js scene: y up; SMPL's camera frame has y down and z away from the camera.
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x15181d);
const camera = new THREE.PerspectiveCamera(45, innerWidth / innerHeight, 0.01, 100);
camera.position.set(0, 0.4, 4);
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(devicePixelRatio);
renderer.setSize(innerWidth, innerHeight);
$("scene").appendChild(renderer.domElement);
const controls = new OrbitControls(camera, renderer.domElement);
controls.target.set(0, 0, 0);
controls.update();
const grid = new THREE.GridHelper(6, 12, 0x4c566a, 0x2e3440);
grid.position.y = -1.1;
scene.add(grid);
addEventListener("resize", () => {
  camera.aspect = innerWidth / innerHeight;
  camera.updateProjectionMatrix();
  renderer.setSize(innerWidth, innerHeight);
});

const COLOURS = [0x88c0d0, 0xa3be8c, 0xebcb8b, 0xd08770, 0xb48ead, 0x8fbcbb, 0xbf616a, 0x5e81ac];
const colour = (id) => COLOURS[id % COLOURS.length];
const figures = new Map(); // track id → { bones: LineSegments, points: Points }

function figure(id) {
  let f = figures.get(id);
  if (!f) {
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.BufferAttribute(new Float32Array(23 * 2 * 3), 3));
    const bones = new THREE.LineSegments(geometry, new THREE.LineBasicMaterial({ color: colour(id) }));
    const pg = new THREE.BufferGeometry();
    pg.setAttribute("position", new THREE.BufferAttribute(new Float32Array(24 * 3), 3));
    const points = new THREE.Points(pg, new THREE.PointsMaterial({ color: colour(id), size: 0.05 }));
    scene.add(bones, points);
    f = { bones, points };
    figures.set(id, f);
  }
  return f;
}

// Joints for a person, in the viewer's axes, laid out across the scene as the image camera
// places them (cam_img's translation).
function worldJoints(p) {
  const exact = p.joints !== undefined;
  const joints = exact
    ? Array.from({ length: 24 }, (_, k) => p.joints.slice(3 * k, 3 * k + 3))
    : approximateJoints(p.pose);
  const [, , tx, ty] = p.cam_img;
  const root = joints[0];
  return {
    exact,
    joints: joints.map(([x, y, z]) => [x - root[0] + tx, -(y - root[1] + ty), -(z - root[2])]),
  };
}

const state = { connection: "connecting", messages: 0, undecodable: 0, people: 0, drawnBones: 0, exact: null, lastError: "" };
const arrivals = [];
let latest = null;

function show(msg) {
  const seen = new Set();
  state.drawnBones = 0;
  for (const p of msg.people) {
    seen.add(p.id);
    const f = figure(p.id);
    const { exact, joints } = worldJoints(p);
    state.exact = exact;
    const bones = f.bones.geometry.attributes.position;
    let b = 0;
    for (let k = 1; k < 24; k++) {
      bones.setXYZ(b++, ...joints[PARENTS[k]]);
      bones.setXYZ(b++, ...joints[k]);
      state.drawnBones++;
    }
    bones.needsUpdate = true;
    f.bones.geometry.computeBoundingSphere();
    const points = f.points.geometry.attributes.position;
    joints.forEach((j, k) => points.setXYZ(k, ...j));
    points.needsUpdate = true;
    f.points.geometry.computeBoundingSphere();
    f.bones.visible = f.points.visible = true;
  }
  for (const [id, f] of figures) if (!seen.has(id)) f.bones.visible = f.points.visible = false;
  state.people = msg.people.length;
}

function drawImage(msg) {
  const c = $("image");
  const g = c.getContext("2d");
  const [w, h] = msg.img;
  const scale = Math.min(c.width / w, c.height / h);
  g.clearRect(0, 0, c.width, c.height);
  g.strokeStyle = "#4c566a";
  g.strokeRect(0.5, 0.5, w * scale - 1, h * scale - 1);
  g.font = "12px system-ui, sans-serif";
  for (const p of msg.people) {
    const [x, y, bw, bh] = p.box;
    const css = `#${colour(p.id).toString(16).padStart(6, "0")}`;
    g.strokeStyle = g.fillStyle = css;
    g.strokeRect(x * scale, y * scale, bw * scale, bh * scale);
    g.fillText(`#${p.id}`, x * scale + 3, y * scale + 13);
  }
}

function hud() {
  const now = performance.now();
  while (arrivals.length && now - arrivals[0] > 2000) arrivals.shift();
  const rate = arrivals.length / 2;
  if (latest) {
    // 64-bit CBOR integers may decode as BigInt.
    const latencyMs = Date.now() - Number(latest.utc_us) / 1000;
    $("stream").textContent = `${latest.dev} · frame ${Number(latest.frame)} · ${rate.toFixed(1)} msg/s · latency ${latencyMs.toFixed(0)} ms (clocks permitting)`;
    $("skeleton-kind").innerHTML = state.exact === false
      ? '<span class="warn">approximate skeleton: θ on generic bone lengths (no joints in the messages)</span>'
      : "joints from the daemon's SMPL model";
    $("people").innerHTML = latest.people
      .map((p) => `<li style="color:#${colour(p.id).toString(16).padStart(6, "0")}">track ${p.id} · score ${p.score.toFixed(2)}</li>`)
      .join("");
  }
  $("test-state").textContent = JSON.stringify({ ...state, rate });
  document.title = `smplcast viewer · ${state.messages} messages`;
}

function animate() {
  requestAnimationFrame(animate);
  controls.update();
  renderer.render(scene, camera);
}

async function main() {
  const config = await settings();
  const base = `${config.prefix}/${config.device}`;
  const client = mqtt.connect(config.ws, { clientId: `smplcast-viewer-${Math.random().toString(16).slice(2, 10)}` });
  client.on("connect", () => {
    state.connection = "connected";
    $("conn").textContent = `connected to ${config.ws}`;
    client.subscribe([`${base}/pose`, `${base}/status`], (err) => {
      state.connection = err ? `subscribe failed: ${err.message}` : `subscribed to ${base}/pose`;
    });
  });
  client.on("error", (e) => { $("conn").textContent = `error: ${e.message}`; state.lastError = e.message; });
  client.on("close", () => {
    state.connection = "disconnected";
    $("conn").textContent = `disconnected from ${config.ws}; retrying`;
  });
  client.on("subscribe", () => { state.connection = "subscribed"; });
  client.on("message", (topic, payload) => {
    if (topic.endsWith("/status")) return;
    try {
      latest = decode(payload);
    } catch (e) {
      state.undecodable++;
      state.lastError = String(e);
      return;
    }
    state.messages++;
    arrivals.push(performance.now());
    show(latest);
    drawImage(latest);
    hud();
  });
  setInterval(hud, 250);
  animate();
}

main();
