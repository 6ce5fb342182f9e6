# Scale chart, drawn by scripts/bench:
#   gnuplot -e "datafile='...'; outfile='...'; subtitle='...'" scale.gnuplot
# datafile is tab-separated with a header row; columns: entries,
# get_hot_ns, get_spread_ns (per call above the bare expression), then
# stats_ms, entries_view_ms, restart_ms (stop + start), first_call_ms and
# clear_ms.  Both axes are logarithmic.
set terminal pngcairo size 1280,600 noenhanced font ",10"
set output outfile
set datafile separator "\t"
set datafile missing "NaN"
set multiplot layout 1,2 title "Cost against registry size (lower is better)\n" . subtitle
set logscale x
set logscale y
set grid xtics ytics mytics
set xlabel "entries (about 100-byte values)"
set format x "%.0s%c"
set key left top
set offsets graph 0.04, graph 0.04, 0, 0
set style data linespoints
set pointsize 1.2
set title "singleton_get, per call above the bare expression"
set ylabel "ns per call"
plot datafile using 1:2 title "one hot name" lw 2, \
     datafile using 1:3 title "every name in turn" lw 2
set title "whole-registry operations"
set ylabel "ms"
plot datafile using 1:4 title "singleton_stats()" lw 2, \
     datafile using 1:5 title "count(*) FROM singleton_entries" lw 2, \
     datafile using 1:6 title "restart (stop with snapshot + start)" lw 2, \
     datafile using 1:7 title "first singleton_get after the restart" lw 2, \
     datafile using 1:8 title "singleton_clear()" lw 2
unset multiplot
