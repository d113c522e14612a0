// Objects drawn over an image: an SVG whose viewBox is the image's pixel size, laid over the <img>
// with the same object-fit (contain), so shapes in image pixels land on the picture at any size.
import { memo } from "react";

export interface Shape {
  id: number;
  category: string | null;
  kind: string;
  bbox: number[] | null;
  polygons: number[][] | null;
  points: number[][] | null;
  source?: string;
  confidence?: number | null;
}

export function colorOf(name: string | null): string {
  let h = 0;
  for (const c of name ?? "") h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 85% 55%)`;
}

function pairs(flat: number[]): string {
  const out: string[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push(`${flat[i]},${flat[i + 1]}`);
  return out.join(" ");
}

export const Overlay = memo(function Overlay({
  width,
  height,
  shapes,
  highlight,
  labels = false,
}: {
  width: number;
  height: number;
  shapes: Shape[];
  highlight?: number | null;
  labels?: boolean;
}) {
  // strokes keep a constant on-screen width whatever the image's scale
  return (
    <svg className="overlay" viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="xMidYMid meet" aria-hidden>
      {shapes.map((s) => {
        const color = colorOf(s.category);
        const hot = highlight === s.id;
        const common = {
          stroke: color,
          strokeWidth: hot ? 4 : 2,
          vectorEffect: "non-scaling-stroke" as const,
          "data-shape": s.kind,
        };
        const parts = [];
        if (s.polygons?.length) {
          const filled = s.kind === "mask" || s.kind === "polygon";
          for (const [i, poly] of s.polygons.entries())
            parts.push(
              s.kind === "polyline" ? (
                <polyline key={`p${i}`} points={pairs(poly)} fill="none" {...common} />
              ) : (
                <polygon key={`p${i}`} points={pairs(poly)} fill={color} fillOpacity={filled ? (hot ? 0.45 : 0.25) : 0} {...common} />
              ),
            );
        } else if (s.bbox) {
          const [x, y, w, h] = s.bbox;
          parts.push(<rect key="b" x={x} y={y} width={w} height={h} fill={color} fillOpacity={hot ? 0.2 : 0} {...common} />);
        }
        const r = Math.max(width, height) / 120;
        for (const [i, p] of (s.points ?? []).entries())
          if (p[2] !== 0) parts.push(<circle key={`k${i}`} cx={p[0]} cy={p[1]} r={r} fill={color} />);
        if (labels && s.bbox && s.category)
          parts.push(
            <text key="t" x={s.bbox[0]} y={s.bbox[1]} dy="-0.3em" fill={color} fontSize={Math.max(width, height) / 45}>
              {s.category}
            </text>,
          );
        return (
          <g key={s.id} data-object={s.id} data-category={s.category ?? ""}>
            {parts}
          </g>
        );
      })}
    </svg>
  );
});
