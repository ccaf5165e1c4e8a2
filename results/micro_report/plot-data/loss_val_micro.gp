# loss_val_micro.svg, written by `moebench report` (suite/plot.cpp).
# Rerun from the report folder: gnuplot plot-data/loss_val_micro.gp
set encoding utf8
set terminal svg size 640,400 font 'sans-serif,12' noenhanced background '#ffffff'
set output 'loss_val_micro.svg'
set datafile separator tab
set border 3 lc rgb '#333333'
set tics nomirror textcolor rgb '#333333'
set title 'validation loss (micro)'
set xlabel 'training step'
set ylabel 'validation loss (nats/token)'
set grid lc rgb '#e3e3e3'
set key outside below horizontal center Left reverse samplen 2.5 spacing 1.1
set pointsize 0.8
set offsets graph 0, graph 0, graph 0.05, graph 0.05
plot 'plot-data/loss_val_micro.0.tsv' using 1:3:4 with filledcurves fc rgb '#E69F00' fs transparent solid 0.2 noborder notitle, \
     'plot-data/loss_val_micro.1.tsv' using 1:3:4 with filledcurves fc rgb '#000000' fs transparent solid 0.2 noborder notitle, \
     'plot-data/loss_val_micro.2.tsv' using 1:3:4 with filledcurves fc rgb '#009E73' fs transparent solid 0.2 noborder notitle, \
     'plot-data/loss_val_micro.3.tsv' using 1:3:4 with filledcurves fc rgb '#D55E00' fs transparent solid 0.2 noborder notitle, \
     'plot-data/loss_val_micro.5.tsv' using 1:3:4 with filledcurves fc rgb '#CC79A7' fs transparent solid 0.2 noborder notitle, \
     'plot-data/loss_val_micro.6.tsv' using 1:3:4 with filledcurves fc rgb '#56B4E9' fs transparent solid 0.2 noborder notitle, \
     'plot-data/loss_val_micro.7.tsv' using 1:3:4 with filledcurves fc rgb '#0072B2' fs transparent solid 0.2 noborder notitle, \
     'plot-data/loss_val_micro.0.tsv' using 1:2 with linespoints lc rgb '#E69F00' lw 2 pt 10 pi 1 title 'aoe (3 seeds)', \
     'plot-data/loss_val_micro.1.tsv' using 1:2 with linespoints lc rgb '#000000' lw 2 pt 2 pi 1 title 'dense (3 seeds)', \
     'plot-data/loss_val_micro.2.tsv' using 1:2 with linespoints lc rgb '#009E73' lw 2 pt 6 pi 1 title 'remoe (3 seeds)', \
     'plot-data/loss_val_micro.3.tsv' using 1:2 with linespoints lc rgb '#D55E00' lw 2 pt 7 pi 1 title 'routing_free (model.init=published; 3 seeds)', \
     'plot-data/loss_val_micro.4.tsv' using 1:2 with linespoints lc rgb '#D55E00' lw 2 pt 5 pi 1 title 'routing_free (model.init=normal)', \
     'plot-data/loss_val_micro.5.tsv' using 1:2 with linespoints lc rgb '#CC79A7' lw 2 pt 12 pi 1 title 'self_routing (3 seeds)', \
     'plot-data/loss_val_micro.6.tsv' using 1:2 with linespoints lc rgb '#56B4E9' lw 2 pt 8 pi 1 title 'switch (3 seeds)', \
     'plot-data/loss_val_micro.7.tsv' using 1:2 with linespoints lc rgb '#0072B2' lw 2 pt 4 pi 1 title 'topk (3 seeds)'
unset output
