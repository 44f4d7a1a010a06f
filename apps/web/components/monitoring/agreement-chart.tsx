'use client';
// The agreement rate per month as a line. The same figures are in the table below it, which is what screen
// readers should use; a month in which no suggested grade was revised has no rate and leaves a gap, not a zero.
import { CartesianGrid, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';

export interface AgreementPoint {
  period: string;
  /** 0-1, or null when nothing was compared that month. */
  agreementRate: number | null;
  compared: number;
}

const percent = (value: number) => `${Math.round(value * 100)} %`;

export function AgreementChart({ points }: { points: AgreementPoint[] }) {
  return (
    <div className="chart agreement-chart" role="group" aria-label={`Line chart: agreement rate by month, ${points[0]?.period ?? ''} to ${points[points.length - 1]?.period ?? ''}; the table below has the same figures`}>
      <ResponsiveContainer width="100%" height={260}>
        <LineChart data={points} margin={{ top: 8, right: 24, bottom: 24, left: 8 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="period" label={{ value: 'Month of the revision', position: 'insideBottom', offset: -12 }} />
          <YAxis type="number" domain={[0, 1]} ticks={[0, 0.25, 0.5, 0.75, 1]} tickFormatter={percent} label={{ value: 'Agreed', angle: -90, position: 'insideLeft' }} />
          <Tooltip formatter={(value) => (typeof value === 'number' ? `${(value * 100).toFixed(1)} %` : String(value))} />
          <Line dataKey="agreementRate" name="Agreement rate" type="linear" stroke="#1f5fa8" strokeWidth={2} dot={{ r: 4 }} connectNulls={false} isAnimationActive={false} />
        </LineChart>
      </ResponsiveContainer>
    </div>
  );
}
