// Draws the figure pages' charts with ECharts; every bar, slice and point opens the case
// list with the same filter (the URLs come with the data, computed by the server).
import * as echarts from 'echarts/core';
import { BarChart, LineChart, PieChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';

echarts.use([BarChart, LineChart, PieChart, GridComponent, LegendComponent, TooltipComponent,
  SVGRenderer]);

const source = document.getElementById('chart-data');
const data = source ? JSON.parse(source.textContent) : null;

function follow(url) {
  if (url && url.startsWith('/')) window.location.assign(url);
}

const builders = {
  trend(d) {
    return {
      option: {
        tooltip: { trigger: 'axis' },
        legend: { top: 0 },
        grid: { left: 40, right: 16, top: 32, bottom: 28 },
        xAxis: { type: 'category', data: d.labels },
        yAxis: { type: 'value', minInterval: 1 },
        series: d.series.map((s) => ({ name: s.name, type: 'line', data: s.data })),
      },
      url: (p) => d.urls[p.dataIndex],
    };
  },
  levels(d) {
    return {
      option: {
        tooltip: { trigger: 'item' },
        series: [{ type: 'pie', radius: ['35%', '65%'],
          data: d.map((x) => ({ name: x.name, value: x.value, itemStyle: { color: x.color } })) }],
      },
      url: (p) => d[p.dataIndex].url,
    };
  },
  scenarios(d) {
    return {
      option: {
        tooltip: { trigger: 'axis' },
        grid: { left: 110, right: 16, top: 8, bottom: 24 },
        xAxis: { type: 'value', minInterval: 1 },
        yAxis: { type: 'category', data: d.map((x) => x.name), inverse: true },
        series: [{ type: 'bar', data: d.map((x) => x.value), itemStyle: { color: '#1f5fa8' } }],
      },
      url: (p) => d[p.dataIndex].url,
    };
  },
};

if (data) {
  for (const node of document.querySelectorAll('[data-chart]')) {
    const build = builders[node.dataset.chart];
    if (!build) continue;
    const { option, url } = build(data[node.dataset.chart]);
    const chart = echarts.init(node, null, { renderer: 'svg' });
    chart.setOption(option);
    chart.on('click', (params) => follow(url(params)));
    node.dataset.ready = 'true';
    window.addEventListener('resize', () => chart.resize());
  }
}
