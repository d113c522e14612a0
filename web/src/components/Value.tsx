// Any JSON the API answers, shown readably: objects as key/value tables, lists of objects as
// tables. Pages use it for fields they have no special view for, so a new field still shows.
import type { ReactNode } from "react";

type J = unknown;

function isObj(v: J): v is Record<string, J> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function scalar(v: J): string {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString() : v.toFixed(4).replace(/0+$/, "");
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export function Table({ rows, link }: { rows: Record<string, J>[]; link?: (row: Record<string, J>, key: string) => ReactNode | null }) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return (
    <table className="grid-table">
      <thead>
        <tr>{keys.map((k) => <th key={k}>{k}</th>)}</tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={i}>
            {keys.map((k) => (
              <td key={k}>{link?.(r, k) ?? <Value v={r[k]} />}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Value({ v, depth = 0 }: { v: J; depth?: number }): ReactNode {
  if (Array.isArray(v)) {
    if (v.length && v.every(isObj) && depth < 3) return <Table rows={v as Record<string, J>[]} />;
    if (v.length > 20 && v.every((x) => typeof x === "number")) return <span className="muted">[{v.length} numbers]</span>;
    return <span>{v.map((x) => scalar(x)).join(", ")}</span>;
  }
  if (isObj(v)) {
    if (depth >= 3) return <code>{JSON.stringify(v)}</code>;
    return (
      <table className="kv">
        <tbody>
          {Object.entries(v).map(([k, x]) => (
            <tr key={k}>
              <th>{k}</th>
              <td><Value v={x} depth={depth + 1} /></td>
            </tr>
          ))}
        </tbody>
      </table>
    );
  }
  return <>{scalar(v)}</>;
}
