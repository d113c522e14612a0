// Charts as plain SVG: bars for counts, lines for curves, a table for a confusion matrix.
import { colorOf } from "./Overlay";

export function Bars({
  title,
  data,
  max = 30,
  colored = false,
}: {
  title: string;
  data: [string, number][];
  max?: number;
  colored?: boolean;
}) {
  const rows = data.slice(0, max);
  const top = Math.max(1, ...rows.map(([, n]) => n));
  const rowH = 20;
  const labelW = 150;
  const barW = 260;
  return (
    <figure className="chart" data-chart={title}>
      <figcaption>{title}</figcaption>
      {rows.length === 0 ? (
        <p className="muted">nothing here</p>
      ) : (
        <svg width={labelW + barW + 70} height={rows.length * rowH + 4} role="img" aria-label={title}>
          {rows.map(([label, n], i) => (
            <g key={label} transform={`translate(0 ${i * rowH})`} data-bar={label} data-value={n}>
              <text x={labelW - 6} y={14} textAnchor="end" className="bar-label">
                {label.length > 22 ? `${label.slice(0, 21)}…` : label}
              </text>
              <rect x={labelW} y={3} height={rowH - 6} width={Math.max(1, (n / top) * barW)}
                fill={colored ? colorOf(label) : "var(--accent)"} rx={2} />
              <text x={labelW + Math.max(1, (n / top) * barW) + 5} y={14} className="bar-value">
                {n.toLocaleString()}
              </text>
            </g>
          ))}
        </svg>
      )}
      {data.length > max && <p className="muted">… and {data.length - max} more</p>}
    </figure>
  );
}

export interface Series {
  name: string;
  points: [number, number][];
}

export function Lines({ title, series, xLabel = "", yLabel = "", square = false }: {
  title: string;
  series: Series[];
  xLabel?: string;
  yLabel?: string;
  square?: boolean;
}) {
  const W = square ? 300 : 420;
  const H = square ? 300 : 200;
  const pad = 36;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (!all.length)
    return (
      <figure className="chart">
        <figcaption>{title}</figcaption>
        <p className="muted">no data</p>
      </figure>
    );
  const [x0, x1] = square ? [0, 1] : [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = square ? [0, 1] : [Math.min(0, ...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const sx = (x: number) => pad + ((x - x0) / (x1 - x0 || 1)) * (W - pad - 8);
  const sy = (y: number) => H - pad + 8 - ((y - y0) / (y1 - y0 || 1)) * (H - pad);
  return (
    <figure className="chart" data-chart={title}>
      <figcaption>{title}</figcaption>
      <svg width={W} height={H + 8} role="img" aria-label={title}>
        <line x1={pad} y1={H - pad + 8} x2={W - 8} y2={H - pad + 8} stroke="#999" />
        <line x1={pad} y1={8} x2={pad} y2={H - pad + 8} stroke="#999" />
        <text x={pad} y={H - pad + 22} className="axis">{fmt(x0)}</text>
        <text x={W - 8} y={H - pad + 22} textAnchor="end" className="axis">{fmt(x1)}</text>
        <text x={pad - 4} y={H - pad + 8} textAnchor="end" className="axis">{fmt(y0)}</text>
        <text x={pad - 4} y={16} textAnchor="end" className="axis">{fmt(y1)}</text>
        <text x={(W + pad) / 2} y={H + 6} textAnchor="middle" className="axis">{xLabel}</text>
        <text x={10} y={H / 2} className="axis" transform={`rotate(-90 10 ${H / 2})`} textAnchor="middle">{yLabel}</text>
        {series.map((s) => (
          <polyline key={s.name} fill="none" stroke={colorOf(s.name)} strokeWidth={2}
            points={s.points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ")} />
        ))}
      </svg>
      <div className="legend">
        {series.map((s) => (
          <span key={s.name}><i style={{ background: colorOf(s.name) }} />{s.name}</span>
        ))}
      </div>
    </figure>
  );
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(2);
}

export function Heatmap({ title, names, matrix }: { title: string; names: string[]; matrix: number[][] }) {
  const top = Math.max(1, ...matrix.flat());
  return (
    <figure className="chart" data-chart={title}>
      <figcaption>{title}</figcaption>
      <table className="heatmap">
        <thead>
          <tr>
            <th>true \ predicted</th>
            {names.map((n) => <th key={n}>{n}</th>)}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => (
            <tr key={i}>
              <th>{names[i] ?? i}</th>
              {row.map((v, j) => (
                <td key={j} style={{ background: `rgba(37, 99, 235, ${(v / top) * 0.85})`, color: v / top > 0.5 ? "#fff" : undefined }}>
                  {Number.isInteger(v) ? v : v.toFixed(2)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
