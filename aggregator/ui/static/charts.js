// Charts as inline SVG, drawn from numbers with a few lines each: a bar chart and a score line. Colours come from
// CSS classes (so light and dark themes apply), and every chart carries its numbers as text for screen readers.
import { h, s } from './dom.js';

/**
 * Vertical bars, one per {label, value, kind}; kind picks the colour class (high, medium, low, pass, fail...).
 * The values are also written above the bars, so nothing needs hovering.
 */
export function barChart(title, bars) {
  const width = 360;
  const height = 180;
  const pad = { top: 20, bottom: 28, side: 12 };
  const max = Math.max(1, ...bars.map((b) => b.value));
  const slot = (width - 2 * pad.side) / Math.max(1, bars.length);
  const barW = Math.min(64, slot * 0.6);
  const plotH = height - pad.top - pad.bottom;
  const label = `${title}: ${bars.map((b) => `${b.label} ${b.value}`).join(', ')}`;
  return h(
    'figure',
    { class: 'chart' },
    s(
      'svg',
      { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'bars' },
      s('title', {}, label),
      s('line', {
        x1: pad.side,
        x2: width - pad.side,
        y1: height - pad.bottom,
        y2: height - pad.bottom,
        class: 'axis',
      }),
      bars.map((b, i) => {
        const barH = (b.value / max) * plotH;
        const x = pad.side + i * slot + (slot - barW) / 2;
        const y = height - pad.bottom - barH;
        return s(
          'g',
          { 'data-label': b.label, 'data-value': b.value },
          s('rect', { x, y, width: barW, height: Math.max(barH, 0.5), class: ['bar', `c-${b.kind ?? 'neutral'}`] }),
          s('text', { x: x + barW / 2, y: y - 5, 'text-anchor': 'middle', class: 'value' }, String(b.value)),
          s('text', { x: x + barW / 2, y: height - 10, 'text-anchor': 'middle', class: 'label' }, b.label),
        );
      }),
    ),
    h('figcaption', {}, title),
  );
}

/** A step line of scores over time, points {t: ms, v: percent}, oldest first; y from 0 to 100. */
export function scoreLine(title, points) {
  const width = 520;
  const height = 160;
  const pad = { left: 48, right: 12, top: 12, bottom: 24 };
  const label = `${title}: ${points.map((p) => `${new Date(p.t).toISOString()} ${p.v}%`).join(', ')}`;
  if (points.length === 0) return h('p', { class: 'muted' }, 'No score history yet.');
  const t0 = points[0].t;
  const t1 = Math.max(points[points.length - 1].t, Date.now());
  const x = (t) => pad.left + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - v / 100) * (height - pad.top - pad.bottom);
  // A scan's score holds until the next one: horizontal, then vertical.
  let d = `M ${x(points[0].t)} ${y(points[0].v)}`;
  for (let i = 1; i < points.length; i++) d += ` H ${x(points[i].t)} V ${y(points[i].v)}`;
  d += ` H ${x(t1)}`;
  return h(
    'figure',
    { class: 'chart' },
    s(
      'svg',
      { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'line' },
      s('title', {}, label),
      [0, 50, 100].map((v) =>
        s(
          'g',
          {},
          s('line', { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: 'grid' }),
          s('text', { x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'label' }, `${v}%`),
        ),
      ),
      s('path', { d, class: 'score' }),
      points.map((p) => s('circle', { cx: x(p.t), cy: y(p.v), r: 3, class: 'point' })),
    ),
    h('figcaption', {}, title),
  );
}
