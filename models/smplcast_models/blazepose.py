"""Reference person detection with MediaPipe's BlazePose detector (models/detector/), in numpy:
the independent implementation src/detect/blazepose.rs is tested against.

Parameters are those of mediapipe 0.10.21's `PoseDetectionCpu` graph (read from the graph
embedded in the wheel): SsdAnchors, TensorsToDetections, NonMaxSuppression (weighted), and the
letterbox of ImageToTensor (keep aspect ratio, zero border, range [-1, 1]). Checked against
mediapipe's own graph on astronaut: the same single detection to 0.1 px, score 0.8071.
"""
import math

import numpy as np

IN_W = IN_H = 224
# SsdAnchorsCalculatorOptions
ANCH = dict(num_layers=5, min_scale=0.1484375, max_scale=0.75, input_size_height=224, input_size_width=224,
            anchor_offset_x=0.5, anchor_offset_y=0.5, strides=[8, 16, 32, 32, 32], aspect_ratios=[1.0],
            fixed_anchor_size=True, interpolated_scale_aspect_ratio=1.0, reduce_boxes_in_lowest_layer=False)
# TensorsToDetectionsCalculatorOptions
NUM_BOXES, NUM_COORDS, BOX_COORD_OFFSET, KP_COORD_OFFSET, NUM_KP, VALS_PER_KP = 2254, 12, 0, 4, 4, 2
X_SCALE = Y_SCALE = W_SCALE = H_SCALE = 224.0
REVERSE_OUTPUT_ORDER, SIGMOID_SCORE, SCORE_CLIP, MIN_SCORE = True, True, 100.0, 0.5
# NonMaxSuppressionCalculatorOptions
MIN_SUPPRESSION, OVERLAP, ALGO = 0.3, 'IOU', 'WEIGHTED'


def calculate_scale(mn, mx, i, n):
    return (mn + mx) * 0.5 if n == 1 else mn + (mx - mn) * i / (n - 1.0)


def ssd_anchors(o=ANCH):
    """Port of SsdAnchorsCalculator::GenerateAnchors -> array [N,4] of (x_center, y_center, w, h)."""
    out = []
    layer_id, n = 0, o['num_layers']
    while layer_id < n:
        ah, aw, ars, scales = [], [], [], []
        last = layer_id
        while last < n and o['strides'][last] == o['strides'][layer_id]:
            scale = calculate_scale(o['min_scale'], o['max_scale'], last, n)
            if last == 0 and o['reduce_boxes_in_lowest_layer']:
                ars += [1.0, 2.0, 0.5]; scales += [0.1, scale, scale]
            else:
                for ar in o['aspect_ratios']:
                    ars.append(ar); scales.append(scale)
                if o['interpolated_scale_aspect_ratio'] > 0:
                    nxt = 1.0 if last == n - 1 else calculate_scale(o['min_scale'], o['max_scale'], last + 1, n)
                    scales.append(math.sqrt(scale * nxt)); ars.append(o['interpolated_scale_aspect_ratio'])
            last += 1
        for ar, sc in zip(ars, scales):
            r = math.sqrt(ar); ah.append(sc / r); aw.append(sc * r)
        s = o['strides'][layer_id]
        fh = math.ceil(o['input_size_height'] / s); fw = math.ceil(o['input_size_width'] / s)
        for y in range(fh):
            for x in range(fw):
                for k in range(len(ah)):
                    xc = (x + o['anchor_offset_x']) / fw; yc = (y + o['anchor_offset_y']) / fh
                    w, h = (1.0, 1.0) if o['fixed_anchor_size'] else (aw[k], ah[k])
                    out.append((xc, yc, w, h))
        layer_id = last
    return np.array(out, np.float32)


def decode(raw_boxes, raw_scores, anchors):
    """Port of TensorsToDetectionsCalculator (reverse_output_order=True). Returns list of dicts."""
    rb = raw_boxes.reshape(NUM_BOXES, NUM_COORDS).astype(np.float32)
    s = raw_scores.reshape(NUM_BOXES).astype(np.float32)
    if SCORE_CLIP:
        s = np.clip(s, -SCORE_CLIP, SCORE_CLIP)
    if SIGMOID_SCORE:
        s = (1.0 / (1.0 + np.exp(-s.astype(np.float64)))).astype(np.float32)
    ax, ay, aw, ah = anchors.T
    o = BOX_COORD_OFFSET
    xc, yc, w, h = rb[:, o], rb[:, o + 1], rb[:, o + 2], rb[:, o + 3]   # reverse order: x,y,w,h
    xc = xc / X_SCALE * aw + ax; yc = yc / Y_SCALE * ah + ay
    w = w / W_SCALE * aw; h = h / H_SCALE * ah
    kps = []
    for k in range(NUM_KP):
        off = KP_COORD_OFFSET + k * VALS_PER_KP
        kx = rb[:, off] / X_SCALE * aw + ax; ky = rb[:, off + 1] / Y_SCALE * ah + ay
        kps.append(np.stack([kx, ky], 1))
    kps = np.stack(kps, 1)                                            # [N,4,2]
    dets = []
    for i in np.nonzero(s >= MIN_SCORE)[0]:
        dets.append(dict(score=float(s[i]), anchor=int(i),
                         box=np.array([xc[i] - w[i] / 2, yc[i] - h[i] / 2, xc[i] + w[i] / 2, yc[i] + h[i] / 2]),
                         kps=kps[i].copy()))
    return dets


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0])); iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(dets, thr=MIN_SUPPRESSION):
    """Port of NonMaxSuppressionCalculator WEIGHTED algorithm (IoU, no max count)."""
    remained = sorted(range(len(dets)), key=lambda i: -dets[i]['score'])
    out = []
    while remained:
        top = dets[remained[0]]
        cand, rest = [], []
        for i in remained:
            (cand if iou(dets[i]['box'], top['box']) > thr else rest).append(i)
        wd = dict(top)
        if cand:
            ws = np.array([dets[i]['score'] for i in cand])
            wd['box'] = sum(dets[i]['box'] * dets[i]['score'] for i in cand) / ws.sum()
            wd['kps'] = sum(dets[i]['kps'] * dets[i]['score'] for i in cand) / ws.sum()
            wd['n_merged'] = len(cand)
        out.append(wd)
        if len(rest) == len(remained):
            break
        remained = rest
    return out


def letterbox(img):
    """ImageToTensorCalculator (CPU/OpenCV path) with keep_aspect_ratio=true, BORDER_ZERO, range [-1,1].

    MediaPipe pads the full-image ROI to a square (centred), then cv::warpPerspective maps the ROI
    corners onto the 224x224 corners (src = dst * side/224 - offset, no half-pixel shift),
    INTER_LINEAR with constant-0 border on uint8 (OpenCV quantises the sub-pixel position to 1/32),
    then converts to float with x/127.5 - 1. Returns input [1,224,224,3] and the letterbox padding
    (left, top, right, bottom) as fractions of the padded square."""
    h, w = img.shape[:2]
    side = float(max(h, w)); s = side / IN_W
    ox, oy = (side - w) / 2.0, (side - h) / 2.0
    def coords(n, off, lim):
        c = np.arange(n, dtype=np.float64) * s - off
        q = np.round(c * 32).astype(np.int64)           # OpenCV INTER_BITS=5 fixed point
        i0 = q >> 5; f = (q & 31) / 32.0
        return i0, f
    x0, fx = coords(IN_W, ox, w); y0, fy = coords(IN_H, oy, h)
    src = np.zeros((h + 2, w + 2, 3), np.float64); src[1:-1, 1:-1] = img      # 1-px zero border
    def g(yy, xx):
        return src[np.clip(yy + 1, 0, h + 1)[:, None], np.clip(xx + 1, 0, w + 1)[None, :]]
    fx_, fy_ = fx[None, :, None], fy[:, None, None]
    out = (g(y0, x0) * (1 - fx_) * (1 - fy_) + g(y0, x0 + 1) * fx_ * (1 - fy_)
           + g(y0 + 1, x0) * (1 - fx_) * fy_ + g(y0 + 1, x0 + 1) * fx_ * fy_)
    out = np.clip(np.round(out), 0, 255).astype(np.float32)
    pad = (ox / side, oy / side, ox / side, oy / side)
    return (out / 127.5 - 1.0)[None], pad


def remove_letterbox(dets, pad):
    l, t, r, b = pad; sx, sy = 1 - l - r, 1 - t - b
    for d in dets:
        d['box'] = (d['box'] - [l, t, l, t]) / [sx, sy, sx, sy]
        d['kps'] = (d['kps'] - [l, t]) / [sx, sy]
    return dets


def detect(img, run, anchors=None):
    """Detections on an RGB uint8 image [H, W, 3] with `run(input) -> {"Identity", "Identity_1"}`:
    (detections in image fractions, the letterboxed uint8 input [224, 224, 3])."""
    anchors = ssd_anchors() if anchors is None else anchors
    x, pad = letterbox(img)
    o = run(x)
    dets = remove_letterbox(weighted_nms(decode(o["Identity"], o["Identity_1"], anchors)), pad)
    u8 = np.clip(np.round((x[0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return dets, u8
