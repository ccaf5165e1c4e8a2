# theta_density_micro.svg, written by `moebench report` (suite/plot.cpp).
# Rerun from the report folder: gnuplot plot-data/theta_density_micro.gp
set encoding utf8
set terminal svg size 640,400 font 'sans-serif,12' noenhanced background '#ffffff'
set output 'theta_density_micro.svg'
set datafile separator tab
set border 3 lc rgb '#333333'
set tics nomirror textcolor rgb '#333333'
set title 'density vs θ (micro)'
set xlabel 'θ (activity threshold at evaluation)'
set ylabel 'density (fraction of expert slots active)'
set grid lc rgb '#e3e3e3'
set key outside below horizontal center Left reverse samplen 2.5 spacing 1.1
set pointsize 0.8
set offsets graph 0, graph 0, graph 0.05, graph 0.05
plot 'plot-data/theta_density_micro.0.tsv' using 1:3:4 with filledcurves fc rgb '#D55E00' fs transparent solid 0.2 noborder notitle, \
     'plot-data/theta_density_micro.0.tsv' using 1:2 with linespoints lc rgb '#D55E00' lw 2 pt 7 pi 1 title 'routing_free (model.init=published; 3 seeds)', \
     'plot-data/theta_density_micro.ref0.tsv' using 1:2 with lines dt 2 lw 1.5 lc rgb '#555555' title 'trained θ = 1'
unset output
