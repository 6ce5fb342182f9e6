# Round-trip throughput chart, drawn by scripts/bench:
#   gnuplot -e "datafile='...'; outfile='...'; ncols=4; subtitle='...'" throughput.gnuplot
# datafile is tab-separated: a header row (workload, then one column per
# client count), then one row per workload with requests per second.
set terminal pngcairo size 1280,720 noenhanced font ",10"
set output outfile
set datafile separator "\t"
set datafile missing "NaN"
set title "Round-trip throughput (higher is better)\n" . subtitle
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9 relative
set ylabel "requests per second"
set yrange [0:*]
set format y "%.0f"
set grid ytics
set key outside right top title "clients"
set xtics nomirror rotate by -30 left
set bmargin 8
plot for [i=2:ncols] datafile using i:xtic(1) title columnheader(i)
